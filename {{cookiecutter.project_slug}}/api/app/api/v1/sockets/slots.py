"""How many sockets each user holds open, counted across every API process."""

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from app.core.producer.errors import ResultBackendUnavailableError

KEY_PREFIX = "api:websockets:"

# KEYS[1]: the user's sorted set; ARGV: now, lease end, limit, member, key TTL.
# Drops the leases that ended, then admits the socket if a slot is free.
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class TooManySocketsError(Exception):
    """The user already holds as many sockets as allowed."""


class SocketSlots:
    """A sorted set per user in Redis: one member per open socket, scored with
    the time its lease ends. A socket renews its lease while it lives, so a
    process that dies without closing its sockets frees their slots when the
    leases end; a count kept in one process would miss the others."""

    def __init__(self, redis: Redis, limit: int, lease: float = 30.0) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT)
        self._limit = limit
        self._lease = lease

    @contextlib.asynccontextmanager
    async def hold(self, user_id: uuid.UUID) -> AsyncIterator[None]:
        """A slot of the user's for the block; TooManySocketsError if none is free."""
        key = f"{KEY_PREFIX}{user_id}"
        member = uuid.uuid4().hex
        now = time.time()
        try:
            admitted = await self._admit(
                keys=[key],
                args=[now, now + self._lease, self._limit, member, math.ceil(self._lease)],
            )
        except Exception as error:  # redis raises several unrelated types
            raise ResultBackendUnavailableError from error
        if not admitted:
            raise TooManySocketsError(user_id)
        renewing = asyncio.create_task(self._renew(key, member))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(BaseException):
                await renewing
            with contextlib.suppress(Exception):  # the lease ends anyway
                await self._redis.zrem(key, member)

    async def _renew(self, key: str, member: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            with contextlib.suppress(Exception):  # a later renewal may succeed
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zadd(key, {member: time.time() + self._lease}, xx=True)
                    pipe.expire(key, math.ceil(self._lease))
                    await pipe.execute()
