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

import aio_pika
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


def broker_probe(url: str, timeout: float) -> Probe:
    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=timeout)
        await connection.close()

    return probe
