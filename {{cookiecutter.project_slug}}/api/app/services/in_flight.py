"""How many tasks one user may have in flight: a sorted set per user in
Redis, shared by every API process, each member a task record's id scored
with its deadline (when it is declared LOST at the latest).

A task enters before it is published and leaves once its record holds its
end. An /async task that ended unread still counts: when a user reaches the
limit, the ends stored in Redis are looked up once, and the tasks that
ended leave (TaskRunner._count_out_ended in tasks.py).
"""

import uuid
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from app.core.batches import Batches
from app.core.producer.errors import ResultBackendUnavailableError


class TooManyTasksError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} tasks in flight already")
        self.limit = limit


# KEYS[1]: the user's set. ARGV: now, limit, the entrant's deadline, its id.
# Drops the members past their deadline, then adds the entrant unless the
# set is full; the key lives as long as its latest deadline. 1 if added.
ENTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
local expires = redis.call('EXPIRETIME', KEYS[1])
if expires < tonumber(ARGV[3]) then
    redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
return 1
"""


class InFlightLimit:
    def __init__(self, redis: Redis, key_prefix: str, limit: int) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self.limit = limit
        self._enter = redis.register_script(ENTER)
        # Tasks counted out in the background: under load, many requests'
        # worth in one round trip.
        self._leaving = Batches(self._leave_batch)

    def _key(self, owner_id: uuid.UUID) -> str:
        return f"{self._key_prefix}:{owner_id}"

    async def enter(self, owner_id: uuid.UUID, task_id: uuid.UUID, deadline: datetime) -> bool:
        """Count the task in, unless its owner is at the limit."""
        now, until = int(datetime.now(deadline.tzinfo).timestamp()), int(deadline.timestamp()) + 1
        try:
            added = await self._enter(
                keys=[self._key(owner_id)], args=[now, self.limit, until, str(task_id)]
            )
        except Exception as error:  # redis raises several unrelated types
            raise ResultBackendUnavailableError from error
        return bool(added)

    async def members(self, owner_id: uuid.UUID) -> list[uuid.UUID]:
        try:
            # Without scores, the members alone, as bytes.
            ids = cast(list[bytes], await self._redis.zrange(self._key(owner_id), 0, -1))
        except Exception as error:
            raise ResultBackendUnavailableError from error
        return [uuid.UUID(task_id.decode()) for task_id in ids]

    def leave_soon(self, owner_id: uuid.UUID, task_ids: list[uuid.UUID]) -> None:
        """leave() in the background; a failure only keeps the tasks counted
        until their deadline."""
        self._leaving.add_in_background((owner_id, task_ids))

    async def _leave_batch(self, batch: list[tuple[uuid.UUID, list[uuid.UUID]]]) -> None:
        by_owner: dict[uuid.UUID, list[uuid.UUID]] = {}
        for owner_id, task_ids in batch:
            by_owner.setdefault(owner_id, []).extend(task_ids)
        pipeline = self._redis.pipeline(transaction=False)
        for owner_id, task_ids in by_owner.items():
            pipeline.zrem(self._key(owner_id), *(str(task_id) for task_id in task_ids))
        await pipeline.execute()

    async def close(self) -> None:
        await self._leaving.close()

    async def leave(self, owner_id: uuid.UUID, task_ids: list[uuid.UUID]) -> None:
        """Count the tasks out; a member left behind leaves at its deadline."""
        if task_ids:
            try:
                await self._redis.zrem(self._key(owner_id), *(str(i) for i in task_ids))
            except Exception as error:
                raise ResultBackendUnavailableError from error
