"""The engine: its settings, and the calls a service makes."""

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from celery.canvas import Signature
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from taskengine.celery_messages import create_builder
from taskengine.config import EngineConfig
from taskengine.errors import TaskNotFoundError
from taskengine.following import Following
from taskengine.leases import Leases
from taskengine.listener import ResultListener
from taskengine.publisher import Publisher
from taskengine.record_store import TaskRecords
from taskengine.records import TaskRecord
from taskengine.replies import TaskReply, TaskSummary
from taskengine.results import StoredResults
from taskengine.sending import Sender
from taskengine.tracking import Tracker


def create_redis(url: str, timeout: float, pool_size: int) -> Redis:
    """A bounded pool, timeouts on every connection and command (a silent
    Redis gives an error, not a hang), and one retry after a restart."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # A restart leaves every pooled connection dead: the first command on
        # each is sent again, once, on a new one. A timeout is not retried.
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


class TaskEngine:
    """Sends Celery tasks for their owners, without blocking the event loop,
    and tells what became of them; one per process, opened and closed with it."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        builder = create_builder(config.broker_url, config.redis_url, config.serializer)
        backend = builder.backend
        self._redis = create_redis(config.redis_url, config.redis_timeout, config.redis_pool_size)
        self._records = TaskRecords(
            config.postgres_url, config.postgres_timeout, config.postgres_pool_size
        )
        stored = StoredResults(self._redis, backend.get_key_for_task, backend.decode_result)
        self._stored = stored
        self._listener = ResultListener(self._redis, stored, config.redis_timeout)
        self._publisher = Publisher(
            config.broker_url, self._redis, config.publish_timeout, config.publish_pool_size
        )
        in_flight = Leases(self._redis, f"{config.key_prefix}:in-flight")
        self._tracker = Tracker(self._records, stored, self._redis, in_flight, config.lost_after)
        self._sender = Sender(
            config,
            builder,
            self._publisher,
            self._records,
            self._listener,
            in_flight,
            self._tracker,
        )
        self._in_flight = in_flight
        self._following = Following(
            self._records,
            self._listener,
            self._tracker,
            Leases(self._redis, f"{config.key_prefix}:followers"),
        )

    @property
    def redis(self) -> Redis:
        """The engine's Redis client (a bounded pool), which its service may share."""
        return self._redis

    async def open(self) -> None:
        await self._records.open()

    async def close(self) -> None:
        await self._tracker.close()
        await self._records.close()  # writes what is queued first: ends tell what Redis may forget
        await self._listener.close()
        await self._stored.close()
        await self._publisher.close()
        await self._in_flight.close()
        await self._redis.aclose()

    async def wait(self, owner_id: uuid.UUID, name: str, signature: Signature) -> TaskReply:
        """Send the signature's tasks and wait for their result, for at most
        wait_timeout seconds (then TaskTimeoutError, and the task is cancelled).
        TaskFailedError for a task that failed or was cancelled meanwhile."""
        return await self._sender.wait(owner_id, name, signature)

    async def submit(self, owner_id: uuid.UUID, name: str, signature: Signature) -> uuid.UUID:
        """Send the signature's tasks; the id to ask status() about."""
        return await self._sender.submit(owner_id, name, signature)

    async def status(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskReply:
        """The owner's task as it is now (TaskNotFoundError for anyone else)."""
        return await self._tracker.state(await self._find(owner_id, task_id))

    async def cancel(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskReply:
        """Cancel the owner's task: none of its tasks starts from now on, and a
        long one stops between its steps. TaskEndedError once it has ended."""
        return await self._tracker.cancel(await self._find(owner_id, task_id))

    async def tasks(
        self, owner_id: uuid.UUID, offset: int, limit: int
    ) -> tuple[int, list[TaskSummary]]:
        """How many tasks the owner sent, and one page of them, newest first."""
        total, records = await self._records.page(owner_id, offset, limit)
        return total, [record.summary() for record in records]

    def follow(
        self, owner_id: uuid.UUID, task_id: uuid.UUID, *, at_most: int = 10, queue_size: int = 32
    ) -> AsyncGenerator[TaskReply]:
        """The owner's task's state each time it changes, the final one last.
        TooManyFollowersError when the owner follows `at_most` tasks already,
        across every process; a slow reader misses intermediate states beyond
        `queue_size`, never the final one. Use it in contextlib.aclosing(), so
        that leaving early lets go of it at once."""
        return self._following.follow(owner_id, task_id, at_most=at_most, queue_size=queue_size)

    async def _find(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskRecord:
        record = await self._records.find(owner_id, task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record


@contextlib.asynccontextmanager
async def open_engine(config: EngineConfig) -> AsyncIterator[TaskEngine]:
    engine = TaskEngine(config)
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()
