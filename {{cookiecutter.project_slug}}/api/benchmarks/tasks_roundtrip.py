"""How fast a task makes the round trip through the API, against three baselines.

Run from api/: `../.venv/bin/python -m benchmarks.tasks_roundtrip` (or `make bench`).
It starts its own worker (on a queue of its own), the API (on a database of its
own) and the original design's app, measures everything in this one run, prints
the table, and cleans up:

  (a) a plain Celery client: send_task(...).get(), Celery's own result consumer;
  (b) the API's waiting endpoint over HTTP: POST /api/v1/tasks/integer-multiplication;
  (c) the original design: sync_to_async(send_task), then sync_to_async(ready)
      polled with a backoff from 0.1 s, times 1.5, then get(), as a coroutine
      in this process;
  (d) the same design as its users serve it: a FastAPI endpoint around it, no
      authentication, no database (original_design.py), in a uvicorn of its own,
      over HTTP.

Latency at concurrency 1 (p50, p95), throughput at concurrency 64 and, as the
reference for (b), a plain client that sends N tasks and then collects them.
Next to each throughput figure over HTTP ((b), (d), GET /api/v1/users/me and
GET /api/v1/health) is the CPU time the server spent per answered request: its
user and system time from /proc, read before and after the run.

`--workers N` serves the API and (d) alike with `uvicorn --workers N`; the CPU
time is then the sum over uvicorn's own process and every process it starts
(the N workers, and multiprocessing's resource tracker).
"""

import argparse
import asyncio
import functools
import math
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from celery import Celery
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.core.config import get_settings
from app.core.producer.catalog import INTEGER_MULTIPLICATION
from app.core.producer.revoker import REVOKED_KEY_PREFIX
from app.core.producer.serialization import TASK_SERIALIZER
from app.core.security import create_access_token, password_hash
from app.models import User
from benchmarks import original_design
from benchmarks.http_load import LoadResult, run, run_load
from benchmarks.original_design import OriginalDesign, plain_client
from benchmarks.servers import cpu_seconds, process_tree, uvicorn_process
from testkit import celery_worker, database_beside, migrated_database

# Threads, so that 64 one-second tasks run at once; every design below goes
# through this same worker.
WORKER_CONCURRENCY = 64


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


@dataclass
class Served:
    """A throughput run over HTTP, and the CPU the server spent on it."""

    load: LoadResult
    cpu_per_answer: float  # seconds, summed over the server's processes


def served_load(pid: int, load: Coroutine[Any, Any, LoadResult]) -> Served:
    """Run `load` against the server whose uvicorn process is `pid`, reading the
    server's own CPU time around it (this process's is the load generator's);
    every answer must be 200."""
    before = cpu_seconds(pid)
    result = run(load)
    assert set(result.statuses) == {200}, result.statuses
    return Served(result, (cpu_seconds(pid) - before) / result.count)


def report(label: str, result: LoadResult) -> None:
    print(
        f"  {label:<46} p50 {milliseconds(result.median)}  p95 {milliseconds(result.percentile(0.95))}"
        f"  ({result.count} round trips)"
    )


def rate_line(label: str, rate: float, unit: str) -> str:
    return f"  {label:<52} {rate:8.0f} {unit}"


def report_served(label: str, served: Served, note: str = "") -> None:
    print(
        f"{rate_line(label, served.load.rate, 'req/s')}"
        f"  {served.cpu_per_answer * 1000:5.2f} ms CPU/request{note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=300, help="round trips at concurrency 1")
    parser.add_argument("--baseline-count", type=int, default=40, help="the same for (c) and (d)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per throughput run")
    parser.add_argument("--batch", type=int, default=3000, help="tasks sent, then collected")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the API and of (d)"
    )
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
            uvicorn_process(environment, workers=args.workers) as api,
            uvicorn_process(
                environment,
                app_path=original_design.APP_PATH,
                ready_path=original_design.READY_PATH,
                workers=args.workers,
            ) as original_over_http,
        ):
            measure(args, client, queue, node, api, original_over_http, token)


def measure(
    args: argparse.Namespace,
    client: Celery,
    queue: str,
    node: str,
    api: tuple[str, int],
    original_over_http: tuple[str, int],
    token: str,
) -> None:
    """Print the table. `api` and `original_over_http`: each server's base URL
    and uvicorn process id."""
    api_base, api_pid = api
    original_base, original_pid = original_over_http
    authorization = {"Authorization": f"Bearer {token}"}
    json_body = {"Content-Type": "application/json"}
    endpoint = f"{api_base}/api/v1/tasks/integer-multiplication"
    original_endpoint = f"{original_base}/tasks/integer-multiplication"

    def post(
        url: str,
        headers: dict[str, str],
        concurrency: int,
        *,
        count: int | None = None,
        seconds: float = math.inf,
    ) -> Coroutine[Any, Any, LoadResult]:
        """One task each, (b) and (d) alike: `count` per connection, or for `seconds`."""
        return run_load(
            url,
            concurrency=concurrency,
            duration=seconds,
            requests_per_connection=count,
            method="POST",
            headers={**headers, **json_body},
            body=b'{"integer": 21}',
        )

    def plain_round_trip() -> None:
        result = client.send_task(INTEGER_MULTIPLICATION, args=[21], queue=queue)
        result.get(timeout=30)
        result.forget()

    original_round_trip = functools.partial(OriginalDesign(client, queue).round_trip, 21)

    # Warm up every path: connections, pools, imports. The servers also once
    # at 64 connections, so that the throughput runs (and the CPU read around
    # them) do not include opening the connections that their pools grow to.
    sequential(plain_round_trip, 20)
    run(post(endpoint, authorization, 1, count=20))
    run(post(endpoint, authorization, 64, count=1))
    run(original_round_trip())
    run(post(original_endpoint, {}, 64, count=1))

    print(
        f"Python {sys.version.split()[0]}, {TASK_SERIALIZER} serializer, worker: "
        f"{WORKER_CONCURRENCY} threads, API and (d): uvicorn --workers {args.workers}"
        f" ({len(process_tree(api_pid))} processes each, CPU summed over them);"
        " all numbers from this one run\n"
    )
    print("Latency, one request at a time (integer multiplication):")
    plain = sequential(plain_round_trip, args.count)
    report("(a) plain Celery client send_task().get()", plain)
    api_latency = run(post(endpoint, authorization, 1, count=args.count))
    assert set(api_latency.statuses) == {200}, api_latency.statuses
    report("(b) API waiting endpoint over HTTP", api_latency)
    baseline = run(repeatedly(original_round_trip, 1, count=args.baseline_count))
    report("(c) original design (sync_to_async + polling)", baseline)
    original_latency = run(post(original_endpoint, {}, 1, count=args.baseline_count))
    assert set(original_latency.statuses) == {200}, original_latency.statuses
    report("(d) original design behind FastAPI, HTTP", original_latency)

    print("\nThroughput (CPU: the server's user + system time per answered request):")
    batch_rate = send_then_collect(client, queue, args.batch)
    print(rate_line(f"plain client, send {args.batch} then collect", batch_rate, "tasks/s"))
    api_load = served_load(api_pid, post(endpoint, authorization, 64, seconds=args.seconds))
    report_served(
        "(b) API waiting endpoint, 64 connections",
        api_load,
        f"  (p50 {milliseconds(api_load.load.median).strip()})",
    )
    baseline_load = run(repeatedly(original_round_trip, 64, seconds=args.seconds))
    print(rate_line("(c) original design, 64 at once", baseline_load.rate, "tasks/s"))
    original_load = served_load(original_pid, post(original_endpoint, {}, 64, seconds=args.seconds))
    report_served(
        "(d) original design behind FastAPI, 64 connections",
        original_load,
        f"  (p50 {milliseconds(original_load.load.median).strip()})",
    )
    health = served_load(
        api_pid, run_load(f"{api_base}/api/v1/health", concurrency=64, duration=args.seconds / 2)
    )
    report_served(
        "GET /api/v1/health, 64 connections", health, "  (what this load generator can drive)"
    )
    me = served_load(
        api_pid,
        run_load(
            f"{api_base}/api/v1/users/me",
            concurrency=64,
            duration=args.seconds / 2,
            headers=authorization,
        ),
    )
    report_served(
        "GET /api/v1/users/me, 64 connections",
        me,
        f"  ({me.load.rate / health.load.rate:.2f}x /health)",
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
    busy = run(health_under_load(api_base, {**authorization, **json_body}))
    print(
        f"  p50 {milliseconds(busy.median).strip()}, p99 {milliseconds(busy.percentile(0.99)).strip()}"
        f", max {milliseconds(max(busy.latencies)).strip()} ({busy.count} requests)"
    )

    print("\nTargets:")
    checks = [
        ("(b) p50 <= 2x (a) p50", api_latency.median / plain.median, 2.0, "le"),
        ("(b) at 64 >= 0.8x send-then-collect", api_load.load.rate / batch_rate, 0.8, "ge"),
        ("(b) >= 10x faster than (c) at p50", baseline.median / api_latency.median, 10.0, "ge"),
        ("load generator >= 3x (b) throughput", health.load.rate / api_load.load.rate, 3.0, "ge"),
        ("health p99 < 50 ms under load (ms)", busy.percentile(0.99) * 1000, 50.0, "lt"),
        ("(b) at 64 >= 1.0x (d) at 64", api_load.load.rate / original_load.load.rate, 1.0, "ge"),
        ("/users/me at 64 >= 0.4x /health", me.load.rate / health.load.rate, 0.4, "ge"),
        ("API CPU per (b) request <= 2 ms", api_load.cpu_per_answer * 1000, 2.0, "le"),
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
