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

logger = logging.getLogger(__name__)

Meta = dict[str, Any]  # what Celery stores for a task: status, result, traceback...

# Subscribed for as long as the listener lives, so that the reader always has
# a subscription to listen on, even between requests.
IDLE_CHANNEL = "api-result-listener-idle"


class ResultBackendUnavailableError(Exception):
    """Redis, where the results arrive, cannot be reached."""


class ResultListener:
    def __init__(
        self, redis: Redis, backend: BaseKeyValueStoreBackend, confirm_timeout: float
    ) -> None:
        self.redis = redis
        self.backend = backend
        # Seconds Redis gets to confirm a subscription; a connection that
        # stays silent longer is taken for dead and replaced.
        self.confirm_timeout = confirm_timeout
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None
        # channel -> futures of the waiters, resolved with the task's final meta
        self.waiters: dict[bytes, set[asyncio.Future[Meta]]] = {}
        # channel -> future resolved once Redis confirmed the subscription
        self.confirmations: dict[bytes, asyncio.Future[None]] = {}
        self.starting = asyncio.Lock()
        # Deletions under way: referenced so that they are not collected early.
        self.forgetting: set[asyncio.Task[None]] = set()

    def meta_key(self, task_id: str) -> bytes:
        """The Redis key of a task's result; the backend also publishes the
        result on a pub/sub channel of the same name."""
        key: bytes = self.backend.get_key_for_task(task_id)
        return key

    async def start(self) -> PubSub:
        """Open the subscriber on first use, and again after it was lost."""
        async with self.starting:
            if self.pubsub is None or self.reader is None or self.reader.done():
                await self.stop_reading()
                pubsub = self.redis.pubsub()
                try:
                    await pubsub.subscribe(IDLE_CHANNEL)
                except Exception as error:  # redis raises several unrelated types
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    raise ResultBackendUnavailableError from error
                self.pubsub = pubsub
                self.reader = asyncio.create_task(self.read(pubsub), name="result-listener")
            return self.pubsub

    async def stop_reading(self) -> None:
        """Stop the reader and close its connection (a new one replaces them)."""
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
            self.reader = None
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]
            self.pubsub = None

    async def close(self) -> None:
        await asyncio.gather(*self.forgetting, return_exceptions=True)
        await self.stop_reading()

    async def read(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                channel = message["channel"]
                if message["type"] == "subscribe":
                    confirmation = self.confirmations.pop(channel, None)
                    if confirmation is not None and not confirmation.done():
                        confirmation.set_result(None)
                elif message["type"] == "message":
                    self.deliver(channel, message["data"])
        except asyncio.CancelledError:
            # Closed, or taken for dead by a waiter: nothing more will arrive.
            self.fail_waiters(ResultBackendUnavailableError("the result listener stopped"))
            raise
        except Exception as error:  # the connection is gone
            logger.warning("Result listener lost Redis: %r", error)
            self.fail_waiters(ResultBackendUnavailableError(repr(error)))
            # The reader ends here; the next waiter starts a new one.

    def fail_waiters(self, error: Exception) -> None:
        for future in [*self.confirmations.values()] + [
            waiter for waiters in self.waiters.values() for waiter in waiters
        ]:
            if not future.done():
                future.set_exception(error)

    def deliver(self, channel: bytes, payload: bytes) -> None:
        waiters = self.waiters.get(channel, ())
        if not waiters:
            return
        try:
            meta = self.decode(payload)
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

    def decode(self, payload: bytes | str) -> Meta:
        meta: Meta = self.backend.decode_result(payload)
        return meta

    @contextlib.asynccontextmanager
    async def watching(self, task_ids: Iterable[str]) -> AsyncIterator["Watch"]:
        """Subscribe to the tasks' channels for the duration of the block.

        The SUBSCRIBE is sent at once and confirmed in the background, so the
        block can publish the tasks meanwhile; Watch.results() waits for the
        confirmations before it reads the keys.
        """
        pubsub = await self.start()
        loop = asyncio.get_running_loop()
        channels = [self.meta_key(task_id) for task_id in task_ids]
        watch = Watch(self, dict(zip(task_ids, channels, strict=True)), self.confirm_timeout)
        for channel in channels:
            future: asyncio.Future[Meta] = loop.create_future()
            watch.futures[channel] = future
            self.waiters.setdefault(channel, set()).add(future)
            self.confirmations.setdefault(channel, loop.create_future())
        confirmations = [self.confirmations[channel] for channel in channels]
        try:
            await pubsub.subscribe(*channels)
        except Exception as error:
            self.forget_waiters(watch)
            raise ResultBackendUnavailableError from error
        watch.confirmed = confirmations
        try:
            yield watch
        finally:
            self.forget_waiters(watch)
            unsubscribe = [channel for channel in channels if channel not in self.waiters]
            # After the connection was replaced, the old one has nothing to undo.
            if unsubscribe and pubsub is self.pubsub:
                with contextlib.suppress(Exception):  # a lost connection has no subscriptions
                    await pubsub.unsubscribe(*unsubscribe)

    def forget_waiters(self, watch: "Watch") -> None:
        for channel, future in watch.futures.items():
            waiters = self.waiters.get(channel)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self.waiters[channel]
                    self.confirmations.pop(channel, None)
            future.cancel()

    async def fetch(self, task_ids: list[str]) -> list[Meta | None]:
        """The stored state of each task, None when nothing is stored (yet)."""
        try:
            payloads = await self.redis.mget([self.meta_key(task_id) for task_id in task_ids])
        except Exception as error:
            raise ResultBackendUnavailableError from error
        return [self.decode(payload) if payload else None for payload in payloads]

    def forget_soon(self, task_ids: list[str]) -> None:
        """forget() in the background: the reply need not wait for it."""
        task = asyncio.create_task(self.forget(task_ids))
        self.forgetting.add(task)
        task.add_done_callback(self.forgetting.discard)

    async def forget(self, task_ids: list[str]) -> None:
        """Delete delivered results: nobody will ask Redis for them again."""
        if task_ids:
            with contextlib.suppress(Exception):  # they expire anyway
                await self.redis.delete(*(self.meta_key(task_id) for task_id in task_ids))


class Watch:
    """The futures of one waiter, by task id."""

    def __init__(
        self, listener: ResultListener, channels: dict[str, bytes], confirm_timeout: float
    ) -> None:
        self.listener = listener
        self.channels = channels
        self.confirm_timeout = confirm_timeout
        self.futures: dict[bytes, asyncio.Future[Meta]] = {}
        self.confirmed: list[asyncio.Future[None]] = []

    async def results(self) -> list[Meta]:
        """Every task's final meta, in order; cancel to stop waiting."""
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await asyncio.gather(*self.confirmed)
        except TimeoutError:
            # A half-dead connection: the next waiter gets a new one.
            if self.listener.reader is not None:
                self.listener.reader.cancel()
            raise ResultBackendUnavailableError("Redis did not confirm the subscription") from None
        task_ids = list(self.channels)
        for task_id, meta in zip(task_ids, await self.listener.fetch(task_ids), strict=True):
            future = self.futures[self.channels[task_id]]
            if meta is not None and meta["status"] in states.READY_STATES and not future.done():
                future.set_result(meta)
        return list(await asyncio.gather(*(self.futures[self.channels[t]] for t in task_ids)))
