"""Revoking tasks: a mark in Redis that every worker honours.

The worker looks for the mark before it starts a task, and a long task
between its steps (worker/revocations.py). Unlike Celery's revoke broadcast,
the mark reaches workers that were down or restarted since, needs no
broker, and stops only the task revoked: Celery's terminate signals a worker
process, which may by then run another task.
"""

import math
from datetime import UTC, datetime

from redis.asyncio import Redis

from app.core.producer.errors import ResultBackendUnavailableError

# The worker reads the same keys (worker/revocations.py).
REVOKED_KEY_PREFIX = "celery-task-revoked-"


class Revoker:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def revoke(self, task_ids: list[str], until: datetime) -> None:
        """Mark the tasks revoked until `until`, when no worker would start
        them anyway; ResultBackendUnavailableError if Redis cannot keep it."""
        seconds = max(1, math.ceil((until - datetime.now(UTC)).total_seconds()))
        try:
            async with self._redis.pipeline(transaction=False) as pipeline:
                for task_id in task_ids:
                    pipeline.set(REVOKED_KEY_PREFIX + task_id, 1, ex=seconds)
                await pipeline.execute()
        except Exception as error:  # redis raises several unrelated types
            raise ResultBackendUnavailableError from error
