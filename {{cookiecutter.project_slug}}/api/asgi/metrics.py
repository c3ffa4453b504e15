"""Prometheus metrics: a pure ASGI middleware that counts requests, and /metrics.

Requests are labelled by route template (`/api/v1/tasks/{task_id}`), never by the
raw path, so ids in URLs cannot grow the number of time series without bound.

With several processes (uvicorn --workers N, gunicorn), each one has its own
counters: set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by all of
them, and /metrics aggregates their files (prometheus_client multiprocess mode).
"""

import glob
import os
import time
from collections.abc import Iterable

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests that matched no route share one label value, and so do methods
# outside HTTP's usual set: clients cannot mint new time series.
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being answered",
    ["method"],
    # Sum over the live processes only in multiprocess mode.
    multiprocess_mode="livesum",
)


class PrometheusMiddleware:
    """Plain ASGI, not BaseHTTPMiddleware: no extra task per request, and
    streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children, looked up once per label set: `.labels()` costs
        # more than the increment itself.
        self.answered: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self.in_progress = {method: IN_PROGRESS.labels(method) for method in KNOWN_METHODS}
        self.in_progress[OTHER_METHOD] = IN_PROGRESS.labels(OTHER_METHOD)

    def record(self, method: str, template: str, status: str, elapsed: float) -> None:
        key = (method, template, status)
        children = self.answered.get(key)
        if children is None:
            children = REQUESTS.labels(*key), LATENCY.labels(method, template)
            self.answered[key] = children
        count, latency = children
        count.inc()
        latency.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
        status_code = 500  # what the client gets if the app raises before answering

        async def send_and_record_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        in_progress = self.in_progress[method]
        in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            elapsed = time.perf_counter() - started
            in_progress.dec()
            # The router stores the matched route in the scope it was handed.
            route = scope.get("route")
            # path_format: the template without converters (`{task_id}`, not `{task_id:uuid}`).
            template = getattr(route, "path_format", UNMATCHED_ROUTE)
            self.record(method, template, str(status_code), elapsed)


def metrics() -> Response:
    """The Prometheus text format. A plain def: FastAPI runs it in the thread pool,
    as multiprocess mode reads one file per process."""
    registry = REGISTRY
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        registry.register(SizedFilesCollector(directory))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class SizedFilesCollector:
    """Multiprocess mode's collector, but for the files of processes that have
    created theirs and not sized it yet: read at 0 bytes, one such file fails
    the whole scrape with prometheus_client's own collector (its issue #1199)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = [path for path in glob.glob(os.path.join(self._directory, "*.db")) if sized(path)]
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:  # its process ended, and the file was removed
        return False
