"""Faults under a steady load: each dependency restarted or silenced while
waiting and /async echo tasks keep coming, the API never restarted.

Each run prints its figures (pytest -s shows them; `make bench-faults` runs
the same scenarios). The dependencies are broken through a proxy of the
test's own, or a redis-server of its own (testkit/faults.py): the machine's
services are never touched. Only the echo task is used, so that these run in
every render.
"""

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, signature
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url

from app.api.v1.private.task_routes import TASKS_PATH
from app.api.v1.private.tasks import ECHO, ECHO_PATH
from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, Settings
from app.main import create_app
from app.models import User
from testkit import WORKER_ROOT, celery_client, celery_worker, free_port
from testkit.faults import FaultProxy, KillableWorker, PrivateRedis, started
from testkit.steady_load import FINAL, FaultRun, SteadyLoad, under_load
from tests.tasks import eventually

# Short timeouts, so that an outage shows in a few seconds.
FAST = {
    "TASK_WAIT_TIMEOUT": 3.0,
    "CELERY_PUBLISH_TIMEOUT": 1.0,
    "REDIS_TIMEOUT": 1.0,
    "POSTGRES_TIMEOUT": 1.0,
}
# Seconds from the repair to the first success, at most.
RECOVERY_GOAL = 5.0


def host_port(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 0)


def through(url: str, port: int) -> str:
    """The URL with its host and port replaced by the proxy's."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def plain_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    return celery_client(
        broker_url or settings.CELERY_BROKER_URL,
        settings.CELERY_RESULT_BACKEND_URL,
        TASK_SERIALIZER,
        QUEUE_TYPE,
    )


@asynccontextmanager
async def api(settings: Settings, **changes: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app of the test's own, with FAST timeouts and the changes, started,
    and a client for it."""
    app: FastAPI = create_app(settings.model_copy(update={**FAST, **changes}))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield app, client


@asynccontextmanager
async def api_client(settings: Settings, **changes: Any) -> AsyncIterator[AsyncClient]:
    async with api(settings, **changes) as (_, client):
        yield client


@contextmanager
def own_worker(
    settings: Settings, tmp_path: Path, queue: str | None = None, **urls: str
) -> Iterator[str]:
    """A worker of the test's own, on a queue of its own (or `queue`), using
    these URLs; yields the queue."""
    queue = queue or f"test.faults.{uuid.uuid4().hex[:12]}"
    node = f"faults-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    client = plain_celery(settings, urls.get("CELERY_BROKER_URL"))
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


# What takes a dependency down, or brings it back.
Action = Callable[[], None]


@contextmanager
def restartable(
    settings: Settings, dependency: str, tmp_path: Path
) -> Iterator[tuple[str, Action, Action]]:
    """The dependency at that setting, to restart: yields the URL that reaches
    it, what takes it down, and what brings it back. Redis is a redis-server
    of the test's own, really restarted; RabbitMQ and PostgreSQL are the
    machine's, behind a proxy that acts the restart out."""
    if dependency == "CELERY_RESULT_BACKEND_URL":
        with started(PrivateRedis(free_port(), tmp_path)) as redis:
            yield redis.url, redis.stop, redis.start
    else:
        url = getattr(settings, dependency)
        with started(FaultProxy(*host_port(url))) as proxy:
            yield through(url, proxy.port), proxy.down, proxy.up


RESTARTED = {
    "RabbitMQ": "CELERY_BROKER_URL",
    "Redis": "CELERY_RESULT_BACKEND_URL",
    "PostgreSQL": "POSTGRES_DATABASE_URL",
}


@pytest.mark.parametrize("name", RESTARTED)
async def test_restart(settings: Settings, load_user: Any, tmp_path: Path, name: str) -> None:
    """The API and a worker of the test's own reach the dependency the same
    way (the worker has no use for PostgreSQL)."""
    _, headers = load_user
    dependency = RESTARTED[name]
    with (
        restartable(settings, dependency, tmp_path) as (url, down, up),
        own_worker(settings, tmp_path, **{dependency: url}) as queue,
    ):
        changes = {dependency: url, "CELERY_TASK_QUEUE": queue}
        async with api_client(settings, **changes) as client:
            run = await under_load(f"{name} restart", SteadyLoad(client, headers), down, up)
    report(run)
    assert_recovered(run)


async def worker_health(health_dir: Path, *arguments: str) -> int:
    """The exit code of the worker image's healthcheck, on the files of a worker
    whose temporary directory is `health_dir`."""
    environment = {**os.environ, "TMPDIR": str(health_dir)}
    check = await asyncio.create_subprocess_exec(
        "sh", "healthcheck.sh", *arguments, cwd=WORKER_ROOT, env=environment
    )
    return await check.wait()


async def test_a_worker_is_not_ready_while_its_broker_restarts_and_beats_again_after(
    settings: Settings, tmp_path: Path
) -> None:
    """The worker's healthcheck (worker/healthcheck.sh) through a RabbitMQ
    restart: its consumer stops, so it is not ready, and starts again once
    connected, its heartbeat armed again; a short outage does not make it look
    dead. (Its heartbeat waits while it reconnects: a longer outage would.)"""
    health_dir = tmp_path / "health"
    health_dir.mkdir()
    alive = health_dir / "worker.alive"

    async def ready_is(exit_code: int) -> bool:
        return await worker_health(health_dir, "--ready") == exit_code

    url = settings.CELERY_BROKER_URL
    with started(FaultProxy(*host_port(url))) as proxy:
        proxied = through(url, proxy.port)
        with own_worker(settings, tmp_path, CELERY_BROKER_URL=proxied, TMPDIR=str(health_dir)):
            assert await ready_is(0)
            proxy.down()
            await eventually(lambda: ready_is(1), 10)
            assert await worker_health(health_dir) == 0
            proxy.up()
            await eventually(lambda: ready_is(0), 20)
            # Beating again, not only touched once when the consumer came back.
            touched = alive.stat().st_mtime

            async def beat_again() -> bool:
                return alive.stat().st_mtime > touched

            await eventually(beat_again, 12)


@pytest.mark.parametrize("dependency", ["POSTGRES_DATABASE_URL", "CELERY_RESULT_BACKEND_URL"])
async def test_silent_dependency(
    settings: Settings, load_user: Any, worker: str, dependency: str
) -> None:
    _, headers = load_user
    url = getattr(settings, dependency)
    with started(FaultProxy(*host_port(url))) as proxy:
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


# Seconds the held tasks wait after they are sent (their countdown): past the
# kill (under_load's warm-up), so the dead worker held them, unacknowledged.
HELD_FOR = 5.0
# The waits of the worker scenario: the default, longer than the outage and a
# new worker's start. A waiting task expires with its wait: one that the dead
# worker was running would then be dead-lettered and end REVOKED, not run.
WAIT_THROUGH_A_RESTART = Settings.model_fields["TASK_WAIT_TIMEOUT"].default


async def final_reply(client: AsyncClient, headers: dict[str, str], task_id: str) -> Any:
    """GET the task until it is final (or for at most 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        reply = (await client.get(f"{TASKS_PATH}/{task_id}", headers=headers)).json()
        if reply["status"] in FINAL or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


async def test_worker_killed_mid_task(
    settings: Settings, make_user: Any, auth_headers: Any, tmp_path: Path
) -> None:
    """SIGKILL the worker while it holds tasks, start another: every task ends, once.

    The held tasks are echo tasks sent with a countdown through the engine.
    With classic queues the worker takes them from the queue at once and keeps
    them, unacknowledged, until their time comes (acks_late), as it keeps a
    task it runs; killed, it leaves them to RabbitMQ, which gives them to the
    next worker. With quorum queues RabbitMQ keeps them until they are due
    (native delayed delivery), and the worker holds none."""
    load_headers = auth_headers(await make_user())
    held_owner = await make_user()
    held_headers = auth_headers(held_owner)
    queue = f"test.faults.{uuid.uuid4().hex[:12]}"
    celery = plain_celery(settings)
    worker = KillableWorker(celery, queue, tmp_path / "worker.log")
    await asyncio.to_thread(worker.start)
    held_at_kill: list[str] = []
    running_at_kill: list[str] = []

    async def kill_holding() -> None:
        """Find the tasks the worker holds and runs, then kill it."""
        inspect = celery.control.inspect(destination=[worker.node], timeout=2)
        scheduled = await asyncio.to_thread(inspect.scheduled) or {}
        active = await asyncio.to_thread(inspect.active) or {}
        held_at_kill.extend(entry["request"]["id"] for entry in scheduled.get(worker.node, []))
        running_at_kill.extend(entry["id"] for entry in active.get(worker.node, []))
        worker.kill()

    try:
        async with api(
            settings, CELERY_TASK_QUEUE=queue, TASK_WAIT_TIMEOUT=WAIT_THROUGH_A_RESTART
        ) as (app, client):
            held = {}
            for number in range(2):
                text = f"held {number}"
                task = signature(ECHO, args=(text,), countdown=HELD_FOR)
                task_id = await app.state.task_engine.submit(held_owner.id, "held-echo", task)
                held[str(task_id)] = text
            load = SteadyLoad(client, load_headers)
            run = await under_load(
                "Worker SIGKILL", load, kill_holding, lambda: asyncio.to_thread(worker.start)
            )
            held_ends = [await final_reply(client, held_headers, task_id) for task_id in held]
    finally:
        await asyncio.to_thread(worker.stop)
        celery.close()
    report(run)
    print(f"At the kill, the worker held {len(held_at_kill)} tasks and ran {len(running_at_kill)}")
    # The held tasks were in the killed worker's hands, or RabbitMQ's; the next
    # worker ran them, to their own text.
    expected_held = sorted(held) if QUEUE_TYPE == "classic" else []
    assert sorted(held_at_kill) == expected_held, (held_at_kill, held)
    assert [(end["status"], end["result"]) for end in held_ends] == [
        ("SUCCESS", text) for text in held.values()
    ], held_ends
    assert_recovered(run)


async def waiting_latencies(
    client: AsyncClient, headers: dict[str, str], count: int
) -> list[float]:
    """Seconds each of `count` waiting echo tasks took, one after the other."""
    latencies = []
    for number in range(count):
        text = f"short {number}"
        began = time.perf_counter()
        response = await client.post(ECHO_PATH, json={"text": text}, headers=headers)
        latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
        assert response.json()["result"] == text, response.text
    return latencies


def percentile(values: list[float], rank: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(rank / 100 * len(ordered)))]


# Tasks queued on the other queue: more than its worker gets through while the
# short tasks are measured, so that its processes are busy throughout.
BACKLOG = 4000


def send_backlog(celery: Celery, queue: str, count: int) -> list[str]:
    """Queue `count` echo tasks on `queue`, through a plain client; their ids."""
    return [
        celery.send_task(ECHO, args=[f"backlog {number}"], queue=queue).id
        for number in range(count)
    ]


def forget(celery: Celery, task_ids: list[str]) -> None:
    """Delete the results the backlog's worker stored."""
    keys = [celery.backend.get_key_for_task(task_id) for task_id in task_ids]
    for start in range(0, len(keys), 500):
        celery.backend.client.delete(*keys[start : start + 500])


async def test_short_tasks_are_not_starved_by_a_busy_queue(
    settings: Settings, load_user: Any, tmp_path: Path
) -> None:
    """Another queue saturated (a backlog of tasks that keeps its worker's
    processes busy): waiting tasks on their own queue keep the latency of an
    idle run. (The long tasks' queue, CELERY_LONG_TASK_QUEUE, is such a queue.)"""
    _, headers = load_user
    queue = f"test.starving.{uuid.uuid4().hex[:12]}"
    busy_queue = f"{queue}-busy"
    celery = plain_celery(settings)
    backlog: list[str] = []
    try:
        with own_worker(settings, tmp_path, queue), own_worker(settings, tmp_path, busy_queue):
            async with api_client(settings, CELERY_TASK_QUEUE=queue) as client:
                idle = await waiting_latencies(client, headers, 50)
                backlog = await asyncio.to_thread(send_backlog, celery, busy_queue, BACKLOG)
                # The busy queue's worker at work on it; the rest of the backlog
                # is deleted with its queue at the end.
                await asyncio.sleep(0.3)
                saturated = await waiting_latencies(client, headers, 50)
                states = await asyncio.to_thread(
                    lambda: [celery.AsyncResult(task_id).state for task_id in backlog[-6:]]
                )
    finally:
        await asyncio.to_thread(forget, celery, backlog)
        celery.close()
    print(
        "\nStarvation: waiting short tasks, p50 / p99:"
        f" idle {percentile(idle, 50) * 1000:.1f} / {percentile(idle, 99) * 1000:.1f} ms;"
        f" other queue saturated {percentile(saturated, 50) * 1000:.1f}"
        f" / {percentile(saturated, 99) * 1000:.1f} ms;"
        f" its last {len(states)} tasks then {sorted(states)}"
    )
    # The backlog's last tasks were still queued: the queue was saturated
    # throughout the measure.
    assert "SUCCESS" not in states, states
    # Not starved: no short task waited behind the backlog (thousands of tasks).
    assert percentile(saturated, 99) < 1.0
