import re
from pathlib import Path

import pytest
from httpx import AsyncClient
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from app.core.config import Settings
from app.main import create_app
from app.models import User
from asgi.metrics import metrics
from tests.conftest import serving


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text, 0 when it is absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match[3])
    return 0.0


async def scrape(client: AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template(
    client: AsyncClient, user: User, auth_headers
) -> None:
    headers = auth_headers(user)
    template = "/api/v1/tasks/{task_id}"
    labels = {"method": "GET", "route": template}
    sent = await client.post("/api/v1/tasks/echo/async", json={"text": "m"}, headers=headers)
    before = await scrape(client)
    await client.get(f"/api/v1/tasks/{sent.json()['task_id']}", headers=headers)
    await client.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000", headers=headers)
    after = await scrape(client)

    delta = sample(after, "http_requests_total", status="200", **labels) - sample(
        before, "http_requests_total", status="200", **labels
    )
    assert delta == 1
    not_found = sample(after, "http_requests_total", status="404", **labels) - sample(
        before, "http_requests_total", status="404", **labels
    )
    assert not_found == 1
    # Raw paths never become labels.
    assert sent.json()["task_id"] not in after
    count = sample(after, "http_request_duration_seconds_count", **labels)
    assert count >= 2
    assert sample(after, "http_request_duration_seconds_bucket", le="+Inf", **labels) == count


async def test_unmatched_paths_share_one_label(client: AsyncClient) -> None:
    await client.get("/no/such/path/12345")
    text = await scrape(client)
    assert sample(text, "http_requests_total", route="<unmatched>", status="404") >= 1
    # The path, not its number: a value such as a start time can hold 12345.
    assert "/no/such/path" not in text


async def test_requests_in_progress_include_the_scrape(client: AsyncClient) -> None:
    text = await scrape(client)
    assert sample(text, "http_requests_in_progress", method="GET") >= 1


async def test_metrics_can_be_turned_off(settings: Settings) -> None:
    async with serving(
        create_app(settings.model_copy(update={"METRICS_ENABLED": False}))
    ) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404


async def test_unusual_methods_share_one_label(client: AsyncClient) -> None:
    await client.request("PURGE", "/api/v1/health")
    text = await scrape(client)
    assert sample(text, "http_requests_total", method="OTHER", route="/api/v1/health") >= 1
    assert 'method="PURGE"' not in text


def test_a_scrape_of_several_processes_skips_a_file_not_sized_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multiprocess mode: a process that has just created its file (0 bytes
    until it sizes it) does not fail the scrape of every other's counts."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    counted = MmapedDict(str(tmp_path / "counter_1.db"))
    counted.write_value(mmap_key("jobs_total", "jobs_total", [], [], "Jobs."), 3.0, 0.0)
    counted.close()
    (tmp_path / "counter_2.db").touch()  # created, not sized yet
    response = metrics()
    assert response.status_code == 200
    assert b"jobs_total 3.0" in response.body
