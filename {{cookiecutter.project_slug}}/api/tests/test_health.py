import time

import pytest
from httpx import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import serving

READY_URL = "/api/v1/health/ready"
FAST_TIMEOUT = 0.5


async def test_health_answers_ok(client: AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_every_dependency_answers(client: AsyncClient) -> None:
    response = await client.get(READY_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == {"postgres", "broker", "result_backend"}
    assert all(part["status"] == "ok" for part in body["components"].values())


def pointed_at(settings: Settings, component: str, port: int) -> Settings:
    urls = {
        "postgres": ("POSTGRES_DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x"),
        "broker": ("CELERY_BROKER_URL", f"amqp://guest:guest@127.0.0.1:{port}//"),
        "result_backend": ("CELERY_RESULT_BACKEND_URL", f"redis://127.0.0.1:{port}/0"),
    }
    name, url = urls[component]
    return settings.model_copy(update={name: url, "READINESS_TIMEOUT": FAST_TIMEOUT})


@pytest.mark.parametrize("component", ["postgres", "broker", "result_backend"])
@pytest.mark.parametrize("port_kind", ["closed_port", "silent_port"])
async def test_dead_dependency_makes_ready_503_within_the_timeout(
    settings: Settings, request: pytest.FixtureRequest, component: str, port_kind: str
) -> None:
    port = request.getfixturevalue(port_kind)
    async with serving(create_app(pointed_at(settings, component, port))) as client:
        began = time.perf_counter()
        response = await client.get(READY_URL)
        elapsed = time.perf_counter() - began
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    expected = "timeout" if port_kind == "silent_port" else "error"
    assert body["components"][component]["status"] == expected
    others = set(body["components"]) - {component}
    assert all(body["components"][name]["status"] == "ok" for name in others)
    # The probes run at once: one timeout bounds the whole answer.
    assert elapsed < FAST_TIMEOUT + 1.0
    # Nothing about hosts or errors leaks to an anonymous caller.
    assert "127.0.0.1" not in response.text


@pytest.mark.parametrize("port_kind", ["closed_port", "silent_port"])
async def test_ready_while_one_node_of_a_broker_cluster_answers(
    settings: Settings, request: pytest.FixtureRequest, port_kind: str
) -> None:
    port = request.getfixturevalue(port_kind)
    cluster = f"amqp://guest:guest@127.0.0.1:{port}//;{settings.CELERY_BROKER_URL}"
    changed = settings.model_copy(
        update={"CELERY_BROKER_URL": cluster, "READINESS_TIMEOUT": FAST_TIMEOUT}
    )
    async with serving(create_app(changed)) as client:
        began = time.perf_counter()
        response = await client.get(READY_URL)
        elapsed = time.perf_counter() - began
    assert response.status_code == 200, response.text
    assert response.json()["components"]["broker"]["status"] == "ok"
    # The answering node is enough: the silent one does not hold the probe.
    assert elapsed < FAST_TIMEOUT
