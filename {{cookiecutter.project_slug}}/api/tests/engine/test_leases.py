"""Counted slots per owner in Redis (taskengine/leases.py), against the real
Redis: one limit however many processes count, slots that end with their
lease, slots given back."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from taskengine import RedisUnavailableError
from taskengine.leases import Leases
from tests.engine.conftest import KEY_PREFIX, REDIS_URL, with_port


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of the test's own, its keys deleted after it."""
    name = f"{KEY_PREFIX}:leases-{uuid.uuid4().hex[:8]}"
    yield name
    keys = [key async for key in redis.scan_iter(f"{name}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def processes(prefix: str) -> AsyncIterator[tuple[Leases, Leases]]:
    """Two Leases on one prefix, each with its own client: two processes."""
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    yield Leases(clients[0], prefix), Leases(clients[1], prefix)
    for client in clients:
        await client.aclose()


def in_seconds(seconds: float) -> float:
    return time.time() + seconds


async def test_the_limit_holds_across_processes(processes: tuple[Leases, Leases]) -> None:
    first, second = processes
    assert await first.take("owner", "a", in_seconds(60), limit=3)
    assert await second.take("owner", "b", in_seconds(60), limit=3)
    assert await first.take("owner", "c", in_seconds(60), limit=3)
    assert not await second.take("owner", "d", in_seconds(60), limit=3)
    assert not await first.take("owner", "e", in_seconds(60), limit=3)
    assert sorted(await second.members("owner")) == ["a", "b", "c"]


async def test_owners_are_counted_apart(processes: tuple[Leases, Leases]) -> None:
    first, second = processes
    assert await first.take("owner", "a", in_seconds(60), limit=1)
    assert await second.take("another", "a", in_seconds(60), limit=1)
    assert not await second.take("owner", "b", in_seconds(60), limit=1)


async def test_concurrent_takes_never_exceed_the_limit(
    processes: tuple[Leases, Leases],
) -> None:
    first, second = processes
    taken = await asyncio.gather(
        *(
            (first if index % 2 else second).take("owner", f"m{index}", in_seconds(60), limit=5)
            for index in range(20)
        )
    )
    assert sum(taken) == 5
    assert len(await first.members("owner")) == 5


async def test_a_slot_ends_with_its_lease(processes: tuple[Leases, Leases]) -> None:
    """A process that died holding it gives it back so."""
    first, second = processes
    assert await first.take("owner", "dies", in_seconds(0.3), limit=1)
    assert not await second.take("owner", "waits", in_seconds(60), limit=1)
    await asyncio.sleep(0.4)
    assert await second.take("owner", "waits", in_seconds(60), limit=1)
    assert await first.members("owner") == ["waits"]


async def test_the_key_lives_as_long_as_its_latest_lease(
    processes: tuple[Leases, Leases], redis: Redis
) -> None:
    first, _ = processes
    await first.take("owner", "long", in_seconds(100), limit=5)
    await first.take("owner", "short", in_seconds(10), limit=5)
    assert 90 < await redis.ttl(first.key("owner")) <= 101


async def test_a_released_slot_is_free_for_another_process(
    processes: tuple[Leases, Leases],
) -> None:
    first, second = processes
    assert await first.take("owner", "a", in_seconds(60), limit=2)
    assert await first.take("owner", "b", in_seconds(60), limit=2)
    await first.release("owner", ["a"])
    assert await second.take("owner", "c", in_seconds(60), limit=2)
    assert not await second.take("owner", "d", in_seconds(60), limit=2)
    assert sorted(await second.members("owner")) == ["b", "c"]


async def test_slots_released_soon_are_given_back_by_close(
    processes: tuple[Leases, Leases],
) -> None:
    first, second = processes
    for member in ("a", "b", "c"):
        await first.take("owner", member, in_seconds(60), limit=3)
    first.release_soon("owner", ["a", "b"])
    first.release_soon("owner", [])
    await first.close()
    assert await second.members("owner") == ["c"]


async def test_renewing_extends_only_the_leases_that_still_exist(
    processes: tuple[Leases, Leases],
) -> None:
    first, second = processes
    await first.take("owner", "kept", in_seconds(0.3), limit=2)
    await first.take("owner", "given back", in_seconds(0.3), limit=2)
    await first.release("owner", ["given back"])
    await first.renew("owner", "kept", in_seconds(60))
    await first.renew("owner", "given back", in_seconds(60))
    await asyncio.sleep(0.4)
    assert await second.take("owner", "new", in_seconds(60), limit=2)
    assert not await second.take("owner", "one too many", in_seconds(60), limit=2)
    assert sorted(await second.members("owner")) == ["kept", "new"]


async def test_redis_out_of_reach_is_unavailable(closed_port: int, prefix: str) -> None:
    client = Redis.from_url(with_port(REDIS_URL, closed_port), socket_connect_timeout=1)
    away = Leases(client, prefix)
    try:
        with pytest.raises(RedisUnavailableError):
            await away.take("owner", "a", in_seconds(60), limit=1)
        with pytest.raises(RedisUnavailableError):
            await away.members("owner")
        with pytest.raises(RedisUnavailableError):
            await away.release("owner", ["a"])
        with pytest.raises(RedisUnavailableError):
            await away.renew("owner", "a", in_seconds(60))
    finally:
        await client.aclose()
