"""How fast a task makes the round trip through the API, against two baselines.

Run from api/: `../.venv/bin/python -m benchmarks.tasks_roundtrip` (or `make bench`).
It starts its own worker (on a queue of its own) and API (on a database of its
own), measures everything in this one run, prints the table, and cleans up:

  (a) a plain Celery client: send_task(...).get(), Celery's own result consumer;
  (b) the API's waiting endpoint over HTTP: POST /api/v1/tasks/integer-multiplication;
  (c) the original design: sync_to_async(send_task), then sync_to_async(ready)
      polled with a backoff from 0.1 s, times 1.5, then get().

Latency at concurrency 1 (p50, p95), throughput at concurrency 64 and, as the
reference for (b), a plain client that sends N tasks and then collects them.
"""

import argparse
import asyncio
import math
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from celery import Celery
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.core.config import Settings, get_settings
from app.core.producer.catalog import INTEGER_MULTIPLICATION
from app.core.producer.revoker import REVOKED_KEY_PREFIX
from app.core.producer.serialization import ACCEPT_CONTENT, TASK_SERIALIZER
from app.core.security import create_access_token, password_hash
from app.models import User
from benchmarks.http_load import LoadResult, run, run_load
from benchmarks.servers import api_server
from testkit import celery_worker, database_beside, migrated_database

# Threads, so that 64 one-second tasks run at once; every design below goes
# through this same worker.
WORKER_CONCURRENCY = 64


def plain_client(settings: Settings) -> Celery:
    """A Celery client as an application would make one, with nothing of ours."""
    client = Celery(
        "plain-client",
        broker=settings.CELERY_BROKER_URL,
        backend=settings.CELERY_RESULT_BACKEND_URL,
        set_as_current=False,
    )
    client.conf.update(
        task_serializer=TASK_SERIALIZER,
        result_serializer=TASK_SERIALIZER,
        accept_content=ACCEPT_CONTENT,
        result_accept_content=ACCEPT_CONTENT,
    )
    return client


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def sequential(call: Callable[[], object], count: int) -> LoadResult:
    """Latencies of `count` blocking calls, one after the other."""
    result = LoadResult()
    started = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        result.latencies.append(time.perf_counter() - began)
    result.elapsed = time.perf_counter() - started
    return result


async def repeatedly(
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    *,
    seconds: float = math.inf,
    count: int | None = None,
) -> LoadResult:
    """Latencies of a coroutine kept `concurrency` times in flight, until
    `seconds` have passed or each of the loops made `count` calls."""
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds

    async def loop() -> None:
        made = 0
        while time.perf_counter() < deadline and (count is None or made < count):
            began = time.perf_counter()
            await call()
            result.latencies.append(time.perf_counter() - began)
            made += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


class OriginalDesign:
    """The producer this template replaces, rebuilt for comparison."""

    def __init__(self, client: Celery, queue: str) -> None:
        self.client = client
        self.queue = queue

    async def round_trip(self) -> object:
        send = sync_to_async(self.client.send_task)  # thread_sensitive=True: one thread
        result = await send(INTEGER_MULTIPLICATION, args=[21], queue=self.queue)
        delay = 0.1
        while not await sync_to_async(result.ready)():
            await asyncio.sleep(delay)
            delay *= 1.5
        value = await sync_to_async(result.get)()
        await sync_to_async(result.forget)()
        return value


def task_events_rates(client: Celery, queue: str, node: str, count: int) -> tuple[float, float]:
    """Send-then-collect throughput of the worker `node` with its task events
    off, then on (what WORKER_SEND_TASK_EVENTS does at start, turned here by
    remote control), in alternating rounds; the best round of each."""
    without, with_ = [], []
    try:
        for _ in range(2):
            client.control.disable_events(destination=[node])
            without.append(send_then_collect(client, queue, count))
            client.control.enable_events(destination=[node])
            with_.append(send_then_collect(client, queue, count))
    finally:
        client.control.disable_events(destination=[node])
    return max(without), max(with_)


def revocation_check_seconds(client: Celery, count: int) -> float:
    """Seconds one revocation check takes: the Redis EXISTS a worker makes
    before each task (worker/revocations.py), from this process."""
    redis = client.backend.client
    keys = [REVOKED_KEY_PREFIX + str(uuid.uuid4()) for _ in range(count)]
    began = time.perf_counter()
    for key in keys:
        redis.exists(key)
    return (time.perf_counter() - began) / count


def send_then_collect(client: Celery, queue: str, count: int) -> float:
    """Tasks/s of a plain client that sends `count` tasks, then collects them."""
    started = time.perf_counter()
    results = [
        client.send_task(INTEGER_MULTIPLICATION, args=[index], queue=queue)
        for index in range(count)
    ]
    for result in results:
        result.get(timeout=60)
        result.forget()
    return count / (time.perf_counter() - started)


async def create_user(database_url: str) -> User:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            user = User(email="bench@example.com", hashed_password=password_hash.hash("bench"))
            session.add(user)
            await session.commit()
            return user
    finally:
        await engine.dispose()


def report(label: str, result: LoadResult) -> None:
    print(
        f"  {label:<44} p50 {milliseconds(result.median)}  p95 {milliseconds(result.percentile(0.95))}"
        f"  ({result.count} round trips)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=300, help="round trips at concurrency 1")
    parser.add_argument("--baseline-count", type=int, default=40, help="the same for (c)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per throughput run")
    parser.add_argument("--batch", type=int, default=3000, help="tasks sent, then collected")
    args = parser.parse_args()

    configured = get_settings()
    queue = f"bench.{configured.CELERY_TASK_QUEUE}.{uuid.uuid4().hex[:8]}"
    secret = secrets.token_urlsafe(32)
    with migrated_database(
        database_beside(configured.POSTGRES_DATABASE_URL, "bench")
    ) as database_url:
        settings = configured.model_copy(
            update={
                "POSTGRES_DATABASE_URL": database_url,
                "CELERY_TASK_QUEUE": queue,
                "SECRET_KEY": SecretStr(secret),
            }
        )
        environment = {
            "POSTGRES_DATABASE_URL": database_url,
            "CELERY_TASK_QUEUE": queue,
            # The benchmark's one worker runs the long tasks too.
            "CELERY_LONG_TASK_QUEUE": queue,
            "SECRET_KEY": secret,
        }
        user = asyncio.run(create_user(database_url))
        token = create_access_token(user.id, settings)
        worker_options = [
            *("--pool=threads", f"--concurrency={WORKER_CONCURRENCY}", "--loglevel=WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]
        node = f"bench-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        client = plain_client(settings)
        with (
            celery_worker(client, queue, node, worker_options),
            api_server(**environment) as base,
        ):
            measure(args, client, queue, node, base, token)


def measure(
    args: argparse.Namespace, client: Celery, queue: str, node: str, base: str, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    endpoint = f"{base}/api/v1/tasks/integer-multiplication"
    body = b'{"integer": 21}'

    def plain_round_trip() -> None:
        result = client.send_task(INTEGER_MULTIPLICATION, args=[21], queue=queue)
        result.get(timeout=30)
        result.forget()

    async def http_sequence(count: int) -> LoadResult:
        return await run_load(
            endpoint,
            concurrency=1,
            requests_per_connection=count,
            method="POST",
            headers=headers,
            body=body,
        )

    original = OriginalDesign(client, queue)

    # Warm up every path: connections, pools, imports.
    sequential(plain_round_trip, 20)
    run(http_sequence(20))
    run(original.round_trip())

    print(
        f"Python {sys.version.split()[0]}, {TASK_SERIALIZER} serializer, worker: "
        f"{WORKER_CONCURRENCY} threads; all numbers from this one run\n"
    )
    print("Latency, one request at a time (integer multiplication):")
    plain = sequential(plain_round_trip, args.count)
    report("(a) plain Celery client send_task().get()", plain)
    api = run(http_sequence(args.count))
    assert set(api.statuses) == {200}, api.statuses
    report("(b) API waiting endpoint over HTTP", api)
    baseline = run(repeatedly(original.round_trip, 1, count=args.baseline_count))
    report("(c) original design (sync_to_async + polling)", baseline)

    print("\nThroughput:")
    batch_rate = send_then_collect(client, queue, args.batch)
    print(f"  plain client, send {args.batch} then collect: {batch_rate:10.0f} tasks/s")
    api_load = run(
        run_load(
            endpoint,
            concurrency=64,
            duration=args.seconds,
            method="POST",
            headers=headers,
            body=body,
        )
    )
    assert set(api_load.statuses) == {200}, api_load.statuses
    print(
        f"  (b) API waiting endpoint, 64 connections:  {api_load.rate:10.0f} req/s"
        f"  (p50 {milliseconds(api_load.median).strip()})"
    )
    baseline_load = run(repeatedly(original.round_trip, 64, seconds=args.seconds))
    print(f"  (c) original design, 64 at once:          {baseline_load.rate:10.0f} tasks/s")
    health = run(run_load(f"{base}/api/v1/health", concurrency=64, duration=args.seconds / 2))
    print(
        f"  GET /api/v1/health, 64 connections:        {health.rate:10.0f} req/s"
        "  (what this load generator can drive)"
    )

    without_events, with_events = task_events_rates(client, queue, node, args.batch)
    print(
        f"  send-then-collect, worker without / with task events:"
        f" {without_events:.0f} / {with_events:.0f} tasks/s"
        f" ({with_events / without_events:.2f}x)"
    )

    check = revocation_check_seconds(client, args.batch)
    print(
        f"  the worker's revocation check:             {check * 1000:10.3f} ms per task"
        f"  ({check * batch_rate:.1%} of a task's share of send-then-collect)"
    )

    print("\nGET /api/v1/health while 64 requests wait on one-second tasks:")
    busy = run(health_under_load(base, headers))
    print(
        f"  p50 {milliseconds(busy.median).strip()}, p99 {milliseconds(busy.percentile(0.99)).strip()}"
        f", max {milliseconds(max(busy.latencies)).strip()} ({busy.count} requests)"
    )

    print("\nTargets:")
    checks = [
        ("(b) p50 <= 2x (a) p50", api.median / plain.median, 2.0, "le"),
        ("(b) at 64 >= 0.8x send-then-collect", api_load.rate / batch_rate, 0.8, "ge"),
        ("(b) >= 10x faster than (c) at p50", baseline.median / api.median, 10.0, "ge"),
        ("load generator >= 3x (b) throughput", health.rate / api_load.rate, 3.0, "ge"),
        ("health p99 < 50 ms under load (ms)", busy.percentile(0.99) * 1000, 50.0, "lt"),
    ]
    for label, value, bound, kind in checks:
        met = {"le": value <= bound, "ge": value >= bound, "lt": value < bound}[kind]
        print(f"  {label:<40} {value:8.2f}  {'met' if met else 'NOT met'}")


async def health_under_load(base: str, headers: dict[str, str]) -> LoadResult:
    slow = run_load(
        f"{base}/api/v1/tasks/long-running",
        concurrency=64,
        requests_per_connection=3,
        method="POST",
        headers=headers,
        body=b'{"seconds": 1, "steps": 1}',
    )
    waiting = asyncio.ensure_future(slow)
    await asyncio.sleep(0.5)  # let the 64 requests get in flight
    probe = await run_load(f"{base}/api/v1/health", concurrency=1, duration=2.0)
    loaded = await waiting
    assert set(loaded.statuses) == {200}, loaded.statuses
    return probe


if __name__ == "__main__":
    main()
