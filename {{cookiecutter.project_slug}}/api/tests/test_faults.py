"""Faults under a steady load: each dependency restarted or silenced while
waiting and /async tasks keep coming, the API never restarted.

Each run prints its figures (pytest -s shows them; `make bench-faults` runs
the same scenarios). The dependencies are broken through a proxy of the
test's own, or a redis-server of its own (testkit/faults.py): the machine's
services are never touched.
"""

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url

from app.core.config import Settings
from app.core.producer.client import create_celery_client
from app.main import create_app
from app.models import User
from testkit import celery_worker, free_port
from testkit.faults import KillableWorker, fault_proxy, private_redis
from testkit.steady_load import FaultRun, SteadyLoad, under_load

# Short timeouts, so that an outage shows in a few seconds.
FAST = {
    "TASK_WAIT_TIMEOUT": 3.0,
    "CELERY_PUBLISH_TIMEOUT": 1.0,
    "RESULT_SUBSCRIBE_TIMEOUT": 1.0,
    "REDIS_CONNECT_TIMEOUT": 1.0,
    "REDIS_COMMAND_TIMEOUT": 1.0,
    "POSTGRES_CONNECT_TIMEOUT": 1.0,
    "POSTGRES_COMMAND_TIMEOUT": 1.0,
}
TASKS = "/api/v1/tasks"
# Seconds from the repair to the first success, at most.
RECOVERY_GOAL = 5.0


def host_port(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 0)


def through(url: str, port: int) -> str:
    """The URL with its host and port replaced by the proxy's."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@asynccontextmanager
async def api_client(settings: Settings, **changes: Any) -> AsyncIterator[AsyncClient]:
    app: FastAPI = create_app(settings.model_copy(update={**FAST, **changes}))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


@contextmanager
def own_worker(
    settings: Settings, tmp_path: Path, queue: str | None = None, **urls: str
) -> Iterator[str]:
    """A worker of the test's own, on a queue of its own (or `queue`), using
    these URLs; yields the queue."""
    queue = queue or f"test.faults.{uuid.uuid4().hex[:12]}"
    node = f"faults-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    client = create_celery_client(
        settings.model_copy(
            update={"CELERY_BROKER_URL": urls.get("CELERY_BROKER_URL", settings.CELERY_BROKER_URL)}
        )
    )
    options = ["--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle"]
    with (tmp_path / f"worker-{queue}.log").open("w") as output:
        try:
            with celery_worker(client, queue, node, options, output=output, **urls):
                yield queue
        finally:
            client.close()


def report(run: FaultRun) -> None:
    print("\n" + run.summary())


def assert_recovered(run: FaultRun, kinds: tuple[str, ...] = ("wait", "async")) -> None:
    """Back within RECOVERY_GOAL, no stale failure after, and every task
    recorded ended: right, or revoked because its request failed."""
    for kind in kinds:
        recovery = run.recovery(kind)
        assert recovery is not None and recovery < RECOVERY_GOAL, run.summary()
    # Once one request got through, the others do too: nothing stale is left.
    recovered_at = run.repaired_at + max(run.recovery(kind) or 0 for kind in kinds)
    assert run.failures(recovered_at, run.stopped_at) == [], run.summary()
    settled = run.settled
    assert settled.unfinished == [], run.summary()
    assert settled.wrong == [], run.summary()
    assert settled.count("LOST") == 0, run.summary()
    # A task is revoked only when its request failed (the publish did not
    # go through), never one whose request got its answer.
    assert settled.count("REVOKED") <= len(run.failures(0, run.stopped_at)), run.summary()
    assert settled.correct == settled.records - settled.count("REVOKED"), run.summary()


@pytest.fixture
async def load_user(make_user: Any, auth_headers: Any) -> tuple[User, dict[str, str]]:
    user = await make_user()
    return user, auth_headers(user)


async def test_rabbitmq_restart(settings: Settings, load_user: Any, tmp_path: Path) -> None:
    _, headers = load_user
    with fault_proxy(*host_port(settings.CELERY_BROKER_URL)) as proxy:
        broker = through(settings.CELERY_BROKER_URL, proxy.port)
        with own_worker(settings, tmp_path, CELERY_BROKER_URL=broker) as queue:
            async with api_client(
                settings, CELERY_BROKER_URL=broker, CELERY_TASK_QUEUE=queue
            ) as client:
                load = SteadyLoad(client, headers)
                run = await under_load("RabbitMQ restart", load, proxy.down, proxy.up)
    report(run)
    assert_recovered(run)


async def test_redis_restart(settings: Settings, load_user: Any, tmp_path: Path) -> None:
    _, headers = load_user
    with (
        private_redis(free_port(), tmp_path) as redis,
        own_worker(settings, tmp_path, CELERY_RESULT_BACKEND_URL=redis.url) as queue,
    ):
        async with api_client(
            settings, CELERY_RESULT_BACKEND_URL=redis.url, CELERY_TASK_QUEUE=queue
        ) as client:
            load = SteadyLoad(client, headers)
            run = await under_load("Redis restart", load, redis.stop, redis.start)
    report(run)
    assert_recovered(run)


async def test_postgres_restart(settings: Settings, load_user: Any, worker: str) -> None:
    _, headers = load_user
    with fault_proxy(*host_port(settings.POSTGRES_DATABASE_URL)) as proxy:
        database = through(settings.POSTGRES_DATABASE_URL, proxy.port)
        async with api_client(settings, POSTGRES_DATABASE_URL=database) as client:
            load = SteadyLoad(client, headers)
            run = await under_load("PostgreSQL restart", load, proxy.down, proxy.up)
    report(run)
    assert_recovered(run)


@pytest.mark.parametrize("dependency", ["POSTGRES_DATABASE_URL", "CELERY_RESULT_BACKEND_URL"])
async def test_silent_dependency(
    settings: Settings, load_user: Any, worker: str, dependency: str
) -> None:
    _, headers = load_user
    url = getattr(settings, dependency)
    with fault_proxy(*host_port(url)) as proxy:
        async with api_client(settings, **{dependency: through(url, proxy.port)}) as client:
            load = SteadyLoad(client, headers)
            name = "PostgreSQL" if dependency.startswith("POSTGRES") else "Redis"
            run = await under_load(f"{name} silent", load, proxy.silent, proxy.up)
    report(run)
    # Silence gives 503 (or 504 for a task that could not be awaited), never a hang.
    for answer in run.failures(run.broken_at, run.repaired_at):
        assert answer.status in (503, 504), run.summary()
        assert answer.ended - answer.started < FAST["TASK_WAIT_TIMEOUT"] + 2, run.summary()
    assert_recovered(run)


async def test_worker_killed_mid_task(
    settings: Settings, make_user: Any, auth_headers: Any, tmp_path: Path
) -> None:
    """SIGKILL the worker while long tasks run, start another: every task ends, once."""
    load_headers, long_headers = auth_headers(await make_user()), auth_headers(await make_user())
    queue = f"test.faults.{uuid.uuid4().hex[:12]}"
    celery = create_celery_client(settings)
    worker = KillableWorker(celery, queue, tmp_path / "worker.log")
    await asyncio.to_thread(worker.start)
    try:
        async with api_client(
            settings, CELERY_TASK_QUEUE=queue, CELERY_LONG_TASK_QUEUE=queue
        ) as client:
            long_ids = []
            for _ in range(2):
                response = await client.post(
                    f"{TASKS}/long-running/async",
                    json={"seconds": 2, "steps": 4},
                    headers=long_headers,
                )
                long_ids.append(response.json()["task_id"])
            load = SteadyLoad(client, load_headers)
            run = await under_load(
                "Worker SIGKILL", load, worker.kill, lambda: asyncio.to_thread(worker.start)
            )
            long_ends = [
                (await client.get(f"{TASKS}/{task_id}", headers=long_headers)).json()
                for task_id in long_ids
            ]
    finally:
        await asyncio.to_thread(worker.close)
        celery.close()
    report(run)
    # The long tasks were running when the worker died: run again, to the end.
    assert [end["status"] for end in long_ends] == ["SUCCESS", "SUCCESS"], long_ends
    assert_recovered(run)


async def waiting_latencies(
    client: AsyncClient, headers: dict[str, str], count: int
) -> list[float]:
    """Seconds each of `count` waiting short tasks took, one after the other."""
    latencies = []
    for integer in range(count):
        began = time.perf_counter()
        response = await client.post(
            f"{TASKS}/integer-multiplication", json={"integer": integer}, headers=headers
        )
        latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
    return latencies


def percentile(values: list[float], rank: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(rank / 100 * len(ordered)))]


async def test_short_tasks_are_not_starved_by_long_ones(
    settings: Settings, load_user: Any, tmp_path: Path
) -> None:
    """The long tasks' queue saturated (more long tasks than its worker has
    processes): waiting short tasks keep the latency of an idle run."""
    _, headers = load_user
    queue = f"test.starving.{uuid.uuid4().hex[:12]}"
    long_queue = f"{queue}-long"
    with own_worker(settings, tmp_path, queue), own_worker(settings, tmp_path, long_queue):
        async with api_client(
            settings, CELERY_TASK_QUEUE=queue, CELERY_LONG_TASK_QUEUE=long_queue
        ) as client:
            idle = await waiting_latencies(client, headers, 50)
            long_ids = []
            for _ in range(6):
                response = await client.post(
                    f"{TASKS}/long-running/async",
                    json={"seconds": 10, "steps": 100},
                    headers=headers,
                )
                long_ids.append(response.json()["task_id"])
            # Both long processes busy (for 10 s, longer than the measure
            # takes), four tasks queued; stopped at the end by their DELETE.
            await asyncio.sleep(0.3)
            saturated = await waiting_latencies(client, headers, 50)
            states = [
                (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()["status"]
                for task_id in long_ids
            ]
            for task_id in long_ids:
                await client.delete(f"{TASKS}/{task_id}", headers=headers)
    print(
        "\nStarvation: waiting short tasks, p50 / p99:"
        f" idle {percentile(idle, 50) * 1000:.1f} / {percentile(idle, 99) * 1000:.1f} ms;"
        f" long queue saturated {percentile(saturated, 50) * 1000:.1f}"
        f" / {percentile(saturated, 99) * 1000:.1f} ms; long tasks then {sorted(states)}"
    )
    # The long tasks were still running or queued: the queue was saturated.
    assert "SUCCESS" not in states, states
    # Not starved: no short task waited for a long one (one would take 10 s).
    assert percentile(saturated, 99) < 1.0
