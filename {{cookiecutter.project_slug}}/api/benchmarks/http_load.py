"""A small HTTP/1.1 load generator: raw asyncio streams, keep-alive connections.

httpx or aiohttp spend more CPU per request than a FastAPI endpoint does, and
would measure themselves. Each connection here sends a request, reads the whole
response, and sends the next, so `concurrency` is the number of requests in flight.
"""

import asyncio
import math
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

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


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response whole; return its status code."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while size := int((await reader.readline()).strip(), 16):
        await reader.readexactly(size + 2)  # chunk and its CRLF
    await reader.readline()  # the CRLF after the last, empty chunk
    return status


def build_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


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
            status = await read_response(reader)
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
