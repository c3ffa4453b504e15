"""Counted slots per owner, shared by every process: a sorted set per owner in
Redis, one member per slot, scored with the time its lease ends. A count kept
in one process would miss the others, and a process that dies without giving
its slots back frees them when their leases end. The engine counts an owner's
tasks in flight (leased until their deadline) and followers (leased for a
while, and renewed while they live)."""

import time
from typing import cast

from redis.asyncio import Redis

from taskengine.batches import Batches
from taskengine.errors import redis_unavailable

# KEYS[1]: the owner's set. ARGV: now, limit, the lease's end, the member.
# Drops the leases that ended, then adds the member unless the set is full;
# the key lives as long as its latest lease. 1 if added.
TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
if redis.call('EXPIRETIME', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3])))
end
return 1
"""


class Leases:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self._take = redis.register_script(TAKE)
        # Slots given back in the background: under load, many in one round trip.
        self._releasing: Batches[tuple[str, list[str]], None] = Batches(self._release_batch)

    def key(self, owner: str) -> str:
        return f"{self._key_prefix}:{owner}"

    async def take(self, owner: str, member: str, until: float, limit: int) -> bool:
        """A slot until `until` (a Unix time), unless the owner holds `limit`."""
        with redis_unavailable():
            taken = await self._take([self.key(owner)], [time.time(), limit, until, member])
        return bool(taken)

    async def members(self, owner: str) -> list[str]:
        with redis_unavailable():
            # Without scores, the members alone, as bytes.
            members = cast(list[bytes], await self._redis.zrange(self.key(owner), 0, -1))
        return [member.decode() for member in members]

    async def renew(self, owner: str, member: str, until: float) -> None:
        """Extend a slot's lease, if it still exists."""
        with redis_unavailable():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self.key(owner), {member: until}, xx=True)
                pipe.expireat(self.key(owner), int(until) + 1, gt=True)
                await pipe.execute()

    async def release(self, owner: str, members: list[str]) -> None:
        with redis_unavailable():
            await self._release_batch([(owner, members)])

    def release_soon(self, owner: str, members: list[str]) -> None:
        """Give the slots back in the background; if that fails, they end with their lease."""
        self._releasing.add_in_background((owner, members))

    async def close(self) -> None:
        await self._releasing.close()

    async def _release_batch(self, batch: list[tuple[str, list[str]]]) -> list[None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for owner, members in batch:
                if members:
                    pipe.zrem(self.key(owner), *members)
            await pipe.execute()
        return [None] * len(batch)
