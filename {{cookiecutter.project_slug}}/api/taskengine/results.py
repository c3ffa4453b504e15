"""The results workers stored in Redis: fetched, decoded, forgotten once kept."""

import contextlib
from collections.abc import Callable

from redis.asyncio import Redis

from taskengine.batches import Batches
from taskengine.errors import redis_unavailable
from taskengine.states import Meta


class StoredResults:
    def __init__(
        self, redis: Redis, key_of: Callable[[str], bytes], decode: Callable[[bytes | str], Meta]
    ) -> None:
        self._redis = redis
        self.key_of = key_of
        self.decode = decode
        # Under load, many requests' worth in one command.
        self._forgetting: Batches[list[str], None] = Batches(self._forget)

    async def fetch(self, task_ids: list[str]) -> list[Meta | None]:
        """Each task's stored state; None where nothing is stored (yet)."""
        with redis_unavailable():
            payloads = await self._redis.mget([self.key_of(task_id) for task_id in task_ids])
        return [self.decode(payload) if payload else None for payload in payloads]

    def forget_soon(self, task_ids: list[str]) -> None:
        """Delete, in the background, results a record keeps now (they expire anyway)."""
        self._forgetting.add_in_background(task_ids)

    async def close(self) -> None:
        await self._forgetting.close()

    async def _forget(self, batch: list[list[str]]) -> list[None]:
        keys = [self.key_of(task_id) for task_ids in batch for task_id in task_ids]
        if keys:
            with contextlib.suppress(Exception):
                await self._redis.delete(*keys)
        return [None] * len(batch)
