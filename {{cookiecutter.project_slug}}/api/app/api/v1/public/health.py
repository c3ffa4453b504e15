"""Liveness and readiness probes. A dead dependency makes GET /health/ready answer
503 within READINESS_TIMEOUT, never hang, naming the component and the kind of
failure; the details (hosts, messages) go to the log, not to anonymous callers."""

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import API_V1_PREFIX
from app.api.deps import SettingsDep
from taskengine import broker_urls

logger = logging.getLogger(__name__)
router = APIRouter(prefix=f"{API_V1_PREFIX}/health")

# An AMQP 0-9-1 client opens with these bytes; a broker answers with a method
# frame, whose first byte is 1. Nothing more is sent: no connection is left behind.
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentStatus(BaseModel):
    status: Literal["ok", "timeout", "error"]
    latency_ms: float


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    components: dict[str, ComponentStatus]


@router.get("", summary="Liveness: the process serves requests (no I/O)")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: PostgreSQL, the broker and the result backend answer",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness}},
)
async def ready(request: Request, response: Response, settings: SettingsDep) -> Readiness:
    probes = {
        "postgres": postgres_answers(request.app.state.db_engine),
        "broker": broker_answers(settings.CELERY_BROKER_URL),
        "result_backend": request.app.state.redis.ping(),
    }
    # All at once: the answer takes one timeout at most.
    timeout = settings.READINESS_TIMEOUT
    results = await asyncio.gather(*(probe(name, check, timeout) for name, check in probes.items()))
    components = dict(zip(probes, results, strict=True))
    if all(component.status == "ok" for component in components.values()):
        return Readiness(status="ready", components=components)
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="unavailable", components=components)


async def probe(name: str, check: Coroutine[Any, Any, object], seconds: float) -> ComponentStatus:
    started = time.perf_counter()
    outcome: Literal["ok", "timeout", "error"] = "ok"
    try:
        async with asyncio.timeout(seconds):
            await check
    except TimeoutError:
        logger.warning("Readiness: %s did not answer within %ss", name, seconds)
        outcome = "timeout"
    except Exception as error:  # any failure means "not ready", whatever its type
        logger.warning("Readiness: %s failed: %r", name, error)
        outcome = "error"
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return ComponentStatus(status=outcome, latency_ms=latency_ms)


async def postgres_answers(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def broker_answers(broker_url: str) -> None:
    """A node answers, of a cluster's: the engine publishes through any of them.
    The first answer is enough; a silent node must not hold the probe."""
    nodes = [asyncio.ensure_future(node_answers(url)) for url in broker_urls(broker_url)]
    try:
        failure: Exception | None = None
        for answer in asyncio.as_completed(nodes):
            try:
                return await answer
            except Exception as error:  # this node failed; another may answer
                failure = error
        assert failure is not None  # there is at least one node (broker_urls)
        raise failure
    finally:
        for node in nodes:
            node.cancel()


async def node_answers(url: str) -> None:
    parts = urlsplit(url)
    tls = parts.scheme == "amqps"
    host, port = parts.hostname or "127.0.0.1", parts.port or (5671 if tls else 5672)
    reader, writer = await asyncio.open_connection(host, port, ssl=tls or None)
    try:
        writer.write(AMQP_PROTOCOL_HEADER)
        await writer.drain()
        if (await reader.readexactly(7))[0] != 1:  # frame type, channel, size
            raise ConnectionError("the broker did not answer in AMQP 0-9-1")
    finally:
        writer.close()
