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
    the time its lease ends. A count kept in one process would miss the others.

    One task renews the leases of every socket of this process, in one round
    trip, while any is open; a process that dies without closing its sockets
    frees their slots when the leases end.
    """

    def __init__(self, redis: Redis, command_timeout: float, lease: float = 30.0) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT)
        # Seconds a Redis command of ours may take before we give up on it.
        self._command_timeout = command_timeout
        self._lease = lease
        # Redis key -> members held by this process
        self._held: dict[str, set[str]] = {}
        self._renewing: asyncio.Task[None] | None = None
        self._emptied = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, user_id: uuid.UUID, limit: int) -> AsyncIterator[None]:
        """One of the user's `limit` slots for the block; TooManySocketsError if
        none is free, ResultBackendUnavailableError if Redis does not answer."""
        key = f"{KEY_PREFIX}{user_id}"
        member = uuid.uuid4().hex
        now = time.time()
        try:
            async with asyncio.timeout(self._command_timeout):
                admitted = await self._admit(
                    keys=[key],
                    args=[now, now + self._lease, limit, member, math.ceil(self._lease)],
                )
        except Exception as error:  # redis raises several unrelated types
            raise ResultBackendUnavailableError from error
        if not admitted:
            raise TooManySocketsError(user_id)
        self._held.setdefault(key, set()).add(member)
        self._keep_renewing()
        try:
            yield
        finally:
            self._forget(key, member)
            with contextlib.suppress(Exception):  # the lease ends anyway
                async with asyncio.timeout(self._command_timeout):
                    await self._redis.zrem(key, member)

    async def close(self) -> None:
        """Stop renewing (the process stops; its leases end on their own)."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing

    def _forget(self, key: str, member: str) -> None:
        members = self._held[key]
        members.discard(member)
        if not members:
            del self._held[key]
        if not self._held:
            self._emptied.set()  # the renewing task ends now, not at its next round

    def _keep_renewing(self) -> None:
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew(), name="socket-slot-renewal")

    async def _renew(self) -> None:
        while self._held:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lease / 3):
                    await self._emptied.wait()
            if self._held:
                with contextlib.suppress(Exception):  # the next round may succeed
                    await self._renew_all()

    async def _renew_all(self) -> None:
        ends = time.time() + self._lease
        async with asyncio.timeout(self._command_timeout):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, members in self._held.items():
                    pipe.zadd(key, dict.fromkeys(members, ends), xx=True)
                    pipe.expire(key, math.ceil(self._lease))
                await pipe.execute()
