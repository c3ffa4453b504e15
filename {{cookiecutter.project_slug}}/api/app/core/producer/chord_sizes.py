"""How many header results a chord waits for: worked out while Celery builds
the chord's messages, written to Redis before the header is sent.

The worker that finishes the header's last task reads the size and starts the
chord's body. Celery writes it with its blocking Redis client as it builds the
chord; here it is kept with the outgoing messages and written asynchronously.
"""

import asyncio
from dataclasses import dataclass

from celery.backends.base import BaseKeyValueStoreBackend
from redis.asyncio import Redis

from app.core.producer.errors import ResultBackendUnavailableError


@dataclass
class ChordSize:
    size_key: bytes
    counter_key: bytes
    size: int
    expires: int | None

    @classmethod
    def of_group(cls, backend: BaseKeyValueStoreBackend, group_id: str, size: int) -> "ChordSize":
        """The keys Celery's Redis backend uses for the group of a chord."""
        return cls(
            size_key=backend.get_key_for_group(group_id, ".s"),
            counter_key=backend.get_key_for_group(group_id, ".c"),
            size=size,
            expires=backend.chord_expires or None,
        )


async def write_chord_sizes(redis: Redis, chord_sizes: list[ChordSize], deadline: float) -> None:
    if not chord_sizes:
        return
    try:
        async with asyncio.timeout(deadline), redis.pipeline() as pipe:
            for chord in chord_sizes:
                # A chord run again under the same id starts counting anew.
                pipe.delete(chord.counter_key)
                pipe.set(chord.size_key, chord.size, ex=chord.expires)
            await pipe.execute()
    except Exception as error:  # redis raises several unrelated types
        raise ResultBackendUnavailableError from error
