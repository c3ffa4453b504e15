"""Waiting for results: one Redis pub/sub subscriber per process.

The worker's Redis backend stores each state of a task under
`celery-task-meta-<id>` and publishes it on a channel of the same name. A
waiter subscribes to its tasks' channels, then reads their keys (a result
stored before the subscription took effect is not missed), then awaits futures
that the single reader task resolves. No thread, no polling.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.core.producer.errors import ResultBackendUnavailableError

logger = logging.getLogger(__name__)

Meta = dict[str, Any]  # what Celery stores for a task: status, result, traceback...

# Subscribed for as long as the listener lives, so that the reader always has
# a subscription to listen on, even between requests.
IDLE_CHANNEL = "api-result-listener-idle"


class ResultListener:
    def __init__(
        self, redis: Redis, backend: BaseKeyValueStoreBackend, confirm_timeout: float
    ) -> None:
        self._redis = redis
        self._backend = backend
        # Seconds Redis gets to confirm a subscription; a connection that
        # stays silent longer is taken for dead and replaced.
        self._confirm_timeout = confirm_timeout
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # channel -> futures of the waiters, resolved with the task's final meta
        self._waiters: dict[bytes, set[asyncio.Future[Meta]]] = {}
        # channel -> future resolved once Redis confirmed the subscription
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._starting = asyncio.Lock()
        # Deletions under way: referenced so that they are not collected early.
        self._forgetting: set[asyncio.Task[None]] = set()

    def meta_key(self, task_id: str) -> bytes:
        """The Redis key of a task's result; the backend also publishes the
        result on a pub/sub channel of the same name."""
        key: bytes = self._backend.get_key_for_task(task_id)
        return key

    async def _start(self) -> PubSub:
        """Open the subscriber on first use, and again after it was lost."""
        async with self._starting:
            if self._pubsub is None or self._reader is None or self._reader.done():
                await self._stop_reading()
                pubsub = self._redis.pubsub()
                try:
                    # A Redis that accepts the connection and never answers
                    # must not hold the request longer than a subscription may take.
                    async with asyncio.timeout(self._confirm_timeout):
                        await pubsub.subscribe(IDLE_CHANNEL)
                except Exception as error:  # redis raises several unrelated types
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    raise ResultBackendUnavailableError from error
                self._pubsub = pubsub
                self._reader = asyncio.create_task(self._read(pubsub), name="result-listener")
            return self._pubsub

    def drop_connection(self) -> None:
        """Take the connection for dead: the reader stops, failing its waiters,
        and the next waiter opens a new connection."""
        if self._reader is not None:
            self._reader.cancel()

    async def _stop_reading(self) -> None:
        """Stop the reader and close its connection (a new one replaces them)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def close(self) -> None:
        await asyncio.gather(*self._forgetting, return_exceptions=True)
        await self._stop_reading()

    async def _read(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                channel = message["channel"]
                if message["type"] == "subscribe":
                    confirmation = self._confirmations.pop(channel, None)
                    if confirmation is not None and not confirmation.done():
                        confirmation.set_result(None)
                elif message["type"] == "message":
                    self._deliver(channel, message["data"])
        except asyncio.CancelledError:
            # Closed, or taken for dead by a waiter: nothing more will arrive.
            self._fail_waiters(ResultBackendUnavailableError("the result listener stopped"))
            raise
        except Exception as error:  # the connection is gone
            logger.warning("Result listener lost Redis: %r", error)
            self._fail_waiters(ResultBackendUnavailableError(repr(error)))
            # The reader ends here; the next waiter starts a new one.

    def _fail_waiters(self, error: Exception) -> None:
        for future in [*self._confirmations.values()] + [
            waiter for waiters in self._waiters.values() for waiter in waiters
        ]:
            if not future.done():
                future.set_exception(error)

    def _deliver(self, channel: bytes, payload: bytes) -> None:
        waiters = self._waiters.get(channel, ())
        if not waiters:
            return
        try:
            meta = self._decode(payload)
        except Exception as error:  # one bad result fails its own waiters only
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
            return
        if meta["status"] not in states.READY_STATES:
            return  # STARTED, PROGRESS...: not an answer yet
        for future in waiters:
            if not future.done():
                future.set_result(meta)

    def _decode(self, payload: bytes | str) -> Meta:
        meta: Meta = self._backend.decode_result(payload)
        return meta

    @contextlib.asynccontextmanager
    async def watching(self, task_ids: Iterable[str]) -> AsyncIterator["Watch"]:
        """Subscribe to the tasks' channels for the duration of the block.

        The SUBSCRIBE is sent at once and confirmed in the background, so the
        block can publish the tasks meanwhile; Watch.results() waits for the
        confirmations before it reads the keys.
        """
        pubsub = await self._start()
        loop = asyncio.get_running_loop()
        channels = {task_id: self.meta_key(task_id) for task_id in task_ids}
        futures: dict[bytes, asyncio.Future[Meta]] = {}
        for channel in channels.values():
            futures[channel] = loop.create_future()
            self._waiters.setdefault(channel, set()).add(futures[channel])
            self._confirmations.setdefault(channel, loop.create_future())
        confirmations = [self._confirmations[channel] for channel in channels.values()]
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await pubsub.subscribe(*channels.values())
        except Exception as error:
            self._forget_waiters(futures)
            raise ResultBackendUnavailableError from error
        try:
            yield Watch(self, channels, futures, confirmations, self._confirm_timeout)
        finally:
            self._forget_waiters(futures)
            unsubscribe = [channel for channel in channels.values() if channel not in self._waiters]
            # After the connection was replaced, the old one has nothing to undo.
            if unsubscribe and pubsub is self._pubsub:
                with contextlib.suppress(Exception):  # a lost connection has no subscriptions
                    await pubsub.unsubscribe(*unsubscribe)

    def _forget_waiters(self, futures: dict[bytes, "asyncio.Future[Meta]"]) -> None:
        for channel, future in futures.items():
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[channel]
                    self._confirmations.pop(channel, None)
            future.cancel()

    async def fetch(self, task_ids: list[str]) -> list[Meta | None]:
        """The stored state of each task, None when nothing is stored (yet)."""
        try:
            payloads = await self._redis.mget([self.meta_key(task_id) for task_id in task_ids])
        except Exception as error:
            raise ResultBackendUnavailableError from error
        return [self._decode(payload) if payload else None for payload in payloads]

    def forget_soon(self, task_ids: list[str]) -> None:
        """forget() in the background: the reply need not wait for it."""
        task = asyncio.create_task(self.forget(task_ids))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def forget(self, task_ids: list[str]) -> None:
        """Delete delivered results: nobody will ask Redis for them again."""
        if task_ids:
            with contextlib.suppress(Exception):  # they expire anyway
                await self._redis.delete(*(self.meta_key(task_id) for task_id in task_ids))


class Watch:
    """The futures of one waiter, by task id; made by ResultListener.watching()."""

    def __init__(
        self,
        listener: ResultListener,
        channels: dict[str, bytes],
        futures: dict[bytes, "asyncio.Future[Meta]"],
        confirmations: list["asyncio.Future[None]"],
        confirm_timeout: float,
    ) -> None:
        self._listener = listener
        self._channels = channels
        self._futures = futures
        self._confirmations = confirmations
        self._confirm_timeout = confirm_timeout

    async def results(self) -> list[Meta]:
        """Every task's final meta, in order; cancel to stop waiting."""
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.gather(*self._confirmations)
        except TimeoutError:
            # A half-dead connection: the next waiter gets a new one.
            self._listener.drop_connection()
            raise ResultBackendUnavailableError("Redis did not confirm the subscription") from None
        task_ids = list(self._channels)
        for task_id, meta in zip(task_ids, await self._listener.fetch(task_ids), strict=True):
            future = self._futures[self._channels[task_id]]
            if meta is not None and meta["status"] in states.READY_STATES and not future.done():
                future.set_result(meta)
        return list(await asyncio.gather(*(self._futures[self._channels[t]] for t in task_ids)))
