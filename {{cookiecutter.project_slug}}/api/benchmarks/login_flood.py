"""What a flood of logins costs the API: 200 at once, each with its own random
e-mail, against one API process on a database of its own.

Run from api/: `../.venv/bin/python -m benchmarks.login_flood` (part of `make
bench`). Twice in this one run: with the per-address limit out of the way, so
that every login reaches the password check (the hashing cap is what holds),
then with the default limits (most are refused before any hashing). For each:
the answers, the API's resident memory before and at its peak, and the latency
of GET /api/v1/health meanwhile.
"""

import argparse
import asyncio
import time
import uuid
from collections import Counter
from urllib.parse import urlencode, urlsplit

from benchmarks.http_load import LoadResult, run
from benchmarks.servers import api_process
from benchmarks.service import bench_service
from testkit import rss_bytes
from testkit.lean_http import build_request, read_response

RSS_GOAL = 300 * 2**20  # bytes
HEALTH_P99_GOAL = 0.2


async def log_in_once(base: str) -> int:
    """One login with a random e-mail, on a connection of its own; its status."""
    url = f"{base}/api/v1/auth/token"
    form = urlencode(
        {"username": f"nobody-{uuid.uuid4().hex}@example.com", "password": "not the password"}
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(build_request(url, "POST", headers, form))
        status, _ = await read_response(reader)
        return status
    finally:
        writer.close()


async def peak_rss(pid: int, stop: asyncio.Event) -> int:
    """The process's largest resident memory, sampled until stopped."""
    peak = rss_bytes(pid)
    while not stop.is_set():
        peak = max(peak, rss_bytes(pid))
        await asyncio.sleep(0.02)
    return max(peak, rss_bytes(pid))


async def probe_health(base: str, stop: asyncio.Event) -> LoadResult:
    """GET /api/v1/health, one request after the other, until stopped."""
    url = f"{base}/api/v1/health"
    parts = urlsplit(url)
    request = build_request(url)
    result = LoadResult()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.perf_counter()
    try:
        while not stop.is_set():
            began = time.perf_counter()
            writer.write(request)
            status, _ = await read_response(reader)
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()
    result.elapsed = time.perf_counter() - started
    return result


async def flood(base: str, pid: int, logins: int) -> None:
    before = rss_bytes(pid)
    stop = asyncio.Event()
    watching = asyncio.ensure_future(peak_rss(pid, stop))
    probing = asyncio.ensure_future(probe_health(base, stop))
    began = time.perf_counter()
    statuses = Counter(await asyncio.gather(*(log_in_once(base) for _ in range(logins))))
    elapsed = time.perf_counter() - began
    stop.set()
    peak, health = await watching, await probing
    growth = peak - before
    p99 = health.percentile(0.99)
    answers = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    print(f"  {logins} logins answered in {elapsed:.2f} s: {answers}")
    print(
        f"  API memory: {before / 2**20:.1f} MiB before, {peak / 2**20:.1f} MiB at the peak:"
        f" +{growth / 2**20:.1f} MiB  ({'met' if growth < RSS_GOAL else 'NOT met'}: < 300 MiB)"
    )
    print(
        f"  GET /api/v1/health meanwhile: p50 {health.median * 1000:.2f} ms,"
        f" p99 {p99 * 1000:.2f} ms over {health.count} requests"
        f"  ({'met' if p99 < HEALTH_P99_GOAL else 'NOT met'}: < 200 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--logins", type=int, default=200, help="at once")
    args = parser.parse_args()
    with bench_service() as (configured, environment):
        print("Every login reaches the password check (per-address limit out of the way):")
        unlimited = {**environment, "LOGIN_ATTEMPTS_PER_ADDRESS": f"{args.logins * 10}/minute"}
        with api_process(**unlimited) as (base, pid):
            run(flood(base, pid, args.logins))
        print(f"\nWith the default limits ({configured.LOGIN_ATTEMPTS_PER_ADDRESS} per address):")
        with api_process(**environment) as (base, pid):
            run(flood(base, pid, args.logins))


if __name__ == "__main__":
    main()
