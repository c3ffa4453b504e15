"""How fast an echo task makes the round trip through the API, against a plain
Celery client.

Run from api/: `../.venv/bin/python -m benchmarks.tasks_roundtrip` (or `make bench`).
It starts its own worker (on a queue of its own) and the API (on a database of
its own), measures everything in this one run, prints the table, and cleans up:

  (a) a plain Celery client: send_task(...).get(), Celery's own result consumer;
  (b) the API's waiting endpoint over HTTP: POST /api/v1/tasks/echo.

Latency at concurrency 1 (p50, p95), throughput at concurrency 64 and, as the
reference for (b), a plain client that sends N tasks and then collects them.
Next to each throughput figure over HTTP ((b), GET /api/v1/users/me and GET
/api/v1/health) is the CPU time the API spent per answered request: its user
and system time from /proc, read before and after the run. Then what the
worker's task events and revocation check cost, and how fast /api/v1/health
answers while 64 requests wait for their tasks.

`--workers N` serves the API with `uvicorn --workers N`; the CPU time is then
the sum over uvicorn's own process and every process it starts (the N
workers, and multiprocessing's resource tracker).
"""

import argparse
import asyncio
import json
import math
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery, states

from app.api.v1.private.tasks import ECHO, ECHO_PATH
from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, Settings, get_settings
from benchmarks.http_load import LoadResult, run, run_load
from benchmarks.servers import cpu_seconds, process_tree, services_cpu_seconds, uvicorn_process
from benchmarks.service import bench_service, bench_user
from taskengine import TaskReply
from taskengine.engine import create_redis
from taskengine.leases import Leases
from taskengine.record_store import TaskRecords
from taskengine.records import TaskRecord
from taskengine.tracking import REVOKED_KEY_PREFIX
from testkit import celery_client, celery_worker

# The worker as compose.yaml starts it (Celery's prefork pool, a process per
# core), but quieter; (a) and (b) go through this same worker.
WORKER_OPTIONS = ["--loglevel=WARNING"]
# What every task of the benchmark echoes.
TEXT = "benchmark"
# Seconds the 64 waiting requests of health_under_load wait for their tasks.
HELD_FOR = 2.5


@dataclass
class BenchWorker:
    """The benchmark's worker: a plain client of its broker and result
    backend, the queue it consumes, its node name."""

    client: Celery
    queue: str
    node: str


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


def task_events_rates(worker: BenchWorker, count: int) -> tuple[float, float]:
    """Send-then-collect throughput of the worker with its task events off,
    then on (what WORKER_SEND_TASK_EVENTS does at start, turned here by remote
    control), in alternating rounds; the best round of each."""
    client, queue, node = worker.client, worker.queue, worker.node
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
        client.send_task(ECHO, args=[f"{TEXT} {index}"], queue=queue) for index in range(count)
    ]
    for result in results:
        result.get(timeout=60)
        result.forget()
    return count / (time.perf_counter() - started)


async def guarantee_waits(settings: Settings, owner_id: uuid.UUID, count: int) -> dict[str, float]:
    """p50 seconds of each store a waiting request waits for besides its task's
    round trip, one after the other as the engine makes them (sending.py), made
    `count` times from this process with the engine's own parts, on keys and
    records of the run's own: the in-flight lease, the record, the end kept."""
    config = settings.engine_config()
    redis = create_redis(config.redis_url, config.redis_timeout, pool_size=1)
    records = TaskRecords(config.postgres_url, config.postgres_timeout, pool_size=1)
    in_flight = Leases(redis, f"bench-{uuid.uuid4().hex}:in-flight")
    owner = str(owner_id)
    waits: dict[str, list[float]] = {"lease": [], "record": [], "end": []}
    await records.open()
    try:
        for _ in range(count):
            task_id = uuid.uuid4()
            expires_at = datetime.now(UTC) + timedelta(seconds=config.wait_timeout)
            record = TaskRecord(
                id=task_id,
                owner_id=owner_id,
                name="bench",
                is_group=False,
                answer_ids=[str(task_id)],
                all_ids=[str(task_id)],
                expires_at=expires_at,
            )
            began = time.perf_counter()
            await in_flight.take(owner, str(task_id), expires_at.timestamp(), count)
            leased = time.perf_counter()
            await records.add(record, durable=False)
            recorded = time.perf_counter()
            await records.keep_end(task_id, TaskReply(task_id=task_id, status=states.SUCCESS))
            waits["end"].append(time.perf_counter() - recorded)
            waits["record"].append(recorded - leased)
            waits["lease"].append(leased - began)
            await in_flight.release(owner, [str(task_id)])
    finally:
        await records.close()
        await redis.aclose()
    return {store: statistics.median(seconds) for store, seconds in waits.items()}


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


def report(label: str, result: LoadResult, remark: str = "") -> None:
    print(
        f"  {label:<46} p50 {milliseconds(result.median)}  p95 {milliseconds(result.percentile(0.95))}"
        f"  ({result.count} round trips{remark})"
    )


def rate_line(label: str, rate: float, unit: str) -> str:
    return f"  {label:<52} {rate:8.0f} {unit}"


def report_served(label: str, served: Served, remark: str = "") -> None:
    print(
        f"{rate_line(label, served.load.rate, 'req/s')}"
        f"  {served.cpu_per_answer * 1000:5.2f} ms CPU/request{remark}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=300, help="round trips at concurrency 1")
    parser.add_argument("--seconds", type=float, default=8.0, help="per throughput run")
    parser.add_argument("--batch", type=int, default=3000, help="tasks sent, then collected")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the API"
    )
    args = parser.parse_args()

    queue = f"bench.{get_settings().CELERY_TASK_QUEUE}.{uuid.uuid4().hex[:8]}"
    with bench_service(CELERY_TASK_QUEUE=queue) as (settings, environment):
        user, token = bench_user(settings)
        node = f"bench-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        client = celery_client(
            settings.CELERY_BROKER_URL,
            settings.CELERY_RESULT_BACKEND_URL,
            TASK_SERIALIZER,
            QUEUE_TYPE,
        )
        worker = BenchWorker(client, queue, node)
        try:
            with (
                celery_worker(client, queue, node, WORKER_OPTIONS),
                uvicorn_process(environment, workers=args.workers) as api,
            ):
                measure(args, worker, api, token, (settings, user.id))
        finally:
            client.close()


def measure(
    args: argparse.Namespace,
    worker: BenchWorker,
    api: tuple[str, int],
    token: str,
    owner: tuple[Settings, uuid.UUID],
) -> None:
    """Print the table. `api`: the API's base URL and uvicorn process id;
    `owner`: the run's settings and the id of the token's user."""
    client, queue = worker.client, worker.queue
    api_base, api_pid = api
    authorization = {"Authorization": f"Bearer {token}"}
    json_body = {"Content-Type": "application/json"}
    endpoint = f"{api_base}{ECHO_PATH}"

    def post(
        concurrency: int, *, count: int | None = None, seconds: float = math.inf
    ) -> Coroutine[Any, Any, LoadResult]:
        """One echo task each: `count` per connection, or for `seconds`."""
        return run_load(
            endpoint,
            concurrency=concurrency,
            duration=seconds,
            requests_per_connection=count,
            method="POST",
            headers={**authorization, **json_body},
            body=json.dumps({"text": TEXT}).encode(),
        )

    def plain_round_trip() -> None:
        result = client.send_task(ECHO, args=[TEXT], queue=queue)
        result.get(timeout=30)
        result.forget()

    # Warm up every path: connections, pools, imports. The API also once at
    # 64 connections, so that the throughput runs (and the CPU read around
    # them) do not include opening the connections that its pools grow to.
    sequential(plain_round_trip, 20)
    run(post(1, count=20))
    run(post(64, count=1))

    print(
        f"Python {sys.version.split()[0]}, {TASK_SERIALIZER} serializer, worker: "
        f"Celery's prefork pool, API: uvicorn --workers {args.workers}"
        f" ({len(process_tree(api_pid))} processes, CPU summed over them);"
        " all numbers from this one run\n"
    )
    print("Latency, one request at a time (echo):")
    plain = sequential(plain_round_trip, args.count)
    report("(a) plain Celery client send_task().get()", plain)
    api_latency = served_load(api_pid, post(1, count=args.count))
    report(
        "(b) API waiting endpoint over HTTP",
        api_latency.load,
        f", {api_latency.cpu_per_answer * 1000:.2f} ms of the API's CPU each",
    )
    me_latency = run(
        run_load(
            f"{api_base}/api/v1/users/me",
            concurrency=1,
            requests_per_connection=args.count,
            headers=authorization,
        )
    )
    report("GET /api/v1/users/me: HTTP, token, account", me_latency)
    waits = run(guarantee_waits(*owner, args.count))
    print(
        "  (b)'s guarantees, each store alone: "
        + ", ".join(f"{store} {seconds * 1000:.2f} ms" for store, seconds in waits.items())
    )
    without = api_latency.load.median - sum(waits.values())
    print(
        f"  (b) less those stores:{milliseconds(without)}, {without / plain.median:.2f}x (a);"
        f" less /users/me too:{milliseconds(without - me_latency.median)},"
        f" {(without - me_latency.median) / plain.median:.2f}x (a)"
    )

    print("\nThroughput (CPU: the API's user + system time per answered request):")
    batch_rate = send_then_collect(client, queue, args.batch)
    print(rate_line(f"plain client, send {args.batch} then collect", batch_rate, "tasks/s"))
    worker_pid = int(client.control.inspect(destination=[worker.node]).stats()[worker.node]["pid"])
    before = {"worker": cpu_seconds(worker_pid), **services_cpu_seconds()}
    api_load = served_load(api_pid, post(64, seconds=args.seconds))
    after = {"worker": cpu_seconds(worker_pid), **services_cpu_seconds()}
    report_served(
        "(b) API waiting endpoint, 64 connections",
        api_load,
        f"  (p50 {milliseconds(api_load.load.median).strip()})",
    )
    spent = {"API": api_load.cpu_per_answer}
    spent.update({part: (after[part] - before[part]) / api_load.load.count for part in before})
    print(
        "  its CPU per request, by process: "
        + ", ".join(f"{part} {seconds * 1000:.2f}" for part, seconds in spent.items())
        + f" ms; {sum(spent.values()) * 1000:.2f} ms in all"
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

    without_events, with_events = task_events_rates(worker, args.batch)
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

    print(
        f"\nGET /api/v1/health while 64 requests wait {HELD_FOR:g} s for their tasks"
        " (held in the queue: the worker stops consuming it meanwhile):"
    )
    busy, waited = run(health_under_load(post(64, count=1), api_base, worker))
    print(
        f"  p50 {milliseconds(busy.median).strip()}, p99 {milliseconds(busy.percentile(0.99)).strip()}"
        f", max {milliseconds(max(busy.latencies)).strip()} ({busy.count} requests);"
        f" the 64 waited {min(waited.latencies):.2f} to {max(waited.latencies):.2f} s"
    )

    print("\nTargets:")
    checks = [
        ("(b) p50 <= 2x (a) p50", api_latency.load.median / plain.median, 2.0, "le"),
        ("(b) at 64 >= 0.8x send-then-collect", api_load.load.rate / batch_rate, 0.8, "ge"),
        ("load generator >= 3x (b) throughput", health.load.rate / api_load.load.rate, 3.0, "ge"),
        ("health p99 < 50 ms under load (ms)", busy.percentile(0.99) * 1000, 50.0, "lt"),
        ("/users/me at 64 >= 0.4x /health", me.load.rate / health.load.rate, 0.4, "ge"),
        ("API CPU per (b) request <= 2 ms", api_load.cpu_per_answer * 1000, 2.0, "le"),
    ]
    for label, value, bound, kind in checks:
        met = {"le": value <= bound, "ge": value >= bound, "lt": value < bound}[kind]
        print(f"  {label:<40} {value:8.2f}  {'met' if met else 'NOT met'}")


async def health_under_load(
    waiting_requests: Coroutine[Any, Any, LoadResult], base: str, worker: BenchWorker
) -> tuple[LoadResult, LoadResult]:
    """GET /api/v1/health, one request at a time, while the waiting requests
    wait HELD_FOR seconds: the worker stops consuming the queue (Celery's
    remote control), so that their tasks stay there, and resumes after. What
    the API does meanwhile is what it does for any slow task: no thread, no
    polling. The probe's figures, and the waiting requests' (all 200)."""
    control, queue, node = worker.client.control, worker.queue, worker.node
    await asyncio.to_thread(control.cancel_consumer, queue, destination=[node], reply=True)
    try:
        waiting = asyncio.ensure_future(waiting_requests)
        await asyncio.sleep(0.5)  # let the 64 requests get in flight
        probe = await run_load(f"{base}/api/v1/health", concurrency=1, duration=HELD_FOR - 0.5)
    finally:
        await asyncio.to_thread(control.add_consumer, queue, destination=[node], reply=True)
    loaded = await waiting
    assert set(loaded.statuses) == {200}, loaded.statuses
    return probe, loaded


if __name__ == "__main__":
    main()
