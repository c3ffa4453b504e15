"""Probes of the services the API needs, each bounded by a timeout.

A dead dependency must make GET /health/ready answer 503 quickly, never hang.
The answer names the failing component and the kind of failure only; the
details (hosts, messages) go to the log, not to anonymous callers.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]


class ComponentStatus(BaseModel):
    status: Literal["ok", "timeout", "error"]
    latency_ms: float


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    components: dict[str, ComponentStatus]


async def run_probe(name: str, probe: Probe, time_limit: float) -> ComponentStatus:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(time_limit):
            await probe()
        outcome: Literal["ok", "timeout", "error"] = "ok"
    except TimeoutError:
        logger.warning("Readiness: %s did not answer within %ss", name, time_limit)
        outcome = "timeout"
    except Exception as error:  # any failure means "not ready", whatever its type
        logger.warning("Readiness: %s failed: %r", name, error)
        outcome = "error"
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return ComponentStatus(status=outcome, latency_ms=latency_ms)


async def check_all(probes: dict[str, Probe], time_limit: float) -> Readiness:
    """Run every probe at once, so the answer takes one timeout at most."""
    results = await asyncio.gather(
        *(run_probe(name, probe, time_limit) for name, probe in probes.items())
    )
    components = dict(zip(probes, results, strict=True))
    ready = all(component.status == "ok" for component in components.values())
    return Readiness(status="ready" if ready else "unavailable", components=components)


def postgres_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return probe


def redis_probe(client: Redis) -> Probe:
    async def probe() -> None:
        await client.ping()

    return probe


# A client opens an AMQP 0-9-1 conversation with these bytes; a broker answers
# with a Connection.Start method frame, whose first byte is 1.
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHOD_FRAME = 1


def broker_probe(url: str) -> Probe:
    """The broker speaks AMQP: it answers the protocol header. Nothing is sent
    beyond that, so the probe leaves no connection or channel behind."""
    parts = urlsplit(url)
    tls = parts.scheme == "amqps"
    host, port = parts.hostname or "127.0.0.1", parts.port or (5671 if tls else 5672)

    async def probe() -> None:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls or None)
        try:
            writer.write(AMQP_PROTOCOL_HEADER)
            await writer.drain()
            frame_header = await reader.readexactly(7)  # type, channel, size
            if frame_header[0] != AMQP_METHOD_FRAME:
                raise ConnectionError("the broker did not answer in AMQP 0-9-1")
        finally:
            writer.close()

    return probe
