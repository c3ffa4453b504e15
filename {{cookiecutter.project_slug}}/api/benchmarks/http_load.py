"""A small HTTP/1.1 load generator on testkit's lean streams (lean_http.py).

Each connection sends a request, reads the whole response, and sends the next,
so `concurrency` is the number of requests in flight.
"""

import asyncio
import math
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from testkit.lean_http import build_request, read_response

Returned = TypeVar("Returned")


def run(coroutine: Coroutine[Any, Any, Returned]) -> Returned:
    """Run on uvloop when it is installed (the API depends on it): the load
    generator then spends about half the CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per answer
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency below which `fraction` of the answers came, in seconds."""
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
        return ordered[index]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)


async def connection_loop(
    url: str, request: bytes, result: LoadResult, deadline: float, requests: int | None
) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    sent = 0
    try:
        while time.perf_counter() < deadline and (requests is None or sent < requests):
            started = time.perf_counter()
            writer.write(request)
            status, _ = await read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            sent += 1
    finally:
        writer.close()


async def run_load(
    url: str,
    *,
    concurrency: int,
    duration: float = math.inf,
    requests_per_connection: int | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> LoadResult:
    """Keep `concurrency` requests in flight until `duration` seconds have passed
    or each connection sent `requests_per_connection` requests."""
    request = build_request(url, method, headers, body)
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(
            connection_loop(url, request, result, deadline, requests_per_connection)
            for _ in range(concurrency)
        )
    )
    result.elapsed = time.perf_counter() - started
    return result
