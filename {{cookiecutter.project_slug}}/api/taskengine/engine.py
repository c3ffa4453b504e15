"""The engine: its parts put together, and the calls a service makes (README.md)."""

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
from taskengine.results import StoredResults
from taskengine.sending import Sender
from taskengine.states import TaskReply, TaskSummary
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
    """One per process, opened and closed with it (open_engine)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        builder = create_builder(
            config.broker_url, config.redis_url, config.serializer, config.queue_type
        )
        redis = create_redis(config.redis_url, config.redis_timeout, config.redis_pool_size)
        records = TaskRecords(
            config.postgres_url, config.postgres_timeout, config.postgres_pool_size
        )
        backend = builder.backend
        stored = StoredResults(redis, backend.get_key_for_task, backend.decode_result)
        listener = ResultListener(redis, stored, config.redis_timeout)
        publisher = Publisher(
            config.broker_url, redis, config.publish_timeout, config.publish_pool_size
        )
        in_flight = Leases(redis, f"{config.key_prefix}:in-flight")
        tracker = Tracker(records, stored, redis, in_flight, config.lost_after)
        followers = Leases(redis, f"{config.key_prefix}:followers")
        self._sender = Sender(config, builder, publisher, records, listener, in_flight, tracker)
        self._following = Following(records, stored, listener, tracker, followers)
        self.redis = redis  # a bounded pool, which the service may share
        self._records = records
        self._stored = stored
        self._listener = listener
        self._publisher = publisher
        self._in_flight = in_flight
        self._tracker = tracker

    async def open(self) -> None:
        await self._records.open()

    async def close(self) -> None:
        await self._tracker.close()
        await self._records.close()  # writes what is queued first: ends tell what Redis may forget
        await self._listener.close()
        await self._stored.close()
        await self._publisher.close()
        await self._in_flight.close()
        await self.redis.aclose()

    # What each call does and raises: README.md.
    async def wait(self, owner_id: uuid.UUID, name: str, signature: Signature) -> TaskReply:
        return await self._sender.wait(owner_id, name, signature)

    async def submit(self, owner_id: uuid.UUID, name: str, signature: Signature) -> uuid.UUID:
        return await self._sender.submit(owner_id, name, signature)

    async def status(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskReply:
        return await self._tracker.state(await self._find(owner_id, task_id))

    async def cancel(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskReply:
        return await self._tracker.cancel(await self._find(owner_id, task_id))

    async def tasks(
        self, owner_id: uuid.UUID, offset: int, limit: int
    ) -> tuple[int, list[TaskSummary]]:
        total, records = await self._records.page(owner_id, offset, limit)
        return total, [record.summary() for record in records]

    def follow(
        self, owner_id: uuid.UUID, task_id: uuid.UUID, *, at_most: int = 10, queue_size: int = 32
    ) -> AsyncGenerator[TaskReply]:
        """Use it in contextlib.aclosing(), so that leaving early lets go of it at once."""
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
