"""Results as they arrive, on one Redis pub/sub connection per process: a worker
publishes each state of a task on a channel named like its key. A subscriber is
told every state published once Redis confirmed its subscription (a waiter
sends its tasks only then). A lost connection is replaced within the timeout,
subscribed again to every channel, whose keys are read for what came meanwhile."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from taskengine.batches import Batches
from taskengine.errors import RedisUnavailableError, redis_unavailable
from taskengine.results import StoredResults
from taskengine.states import Meta

logger = logging.getLogger(__name__)

# Subscribed for as long as the listener lives: redis-py stops listening on a
# connection without subscriptions.
IDLE_CHANNEL = "taskengine-listener-idle"
# Seconds between attempts to replace a lost connection.
RECONNECT_PAUSE = 0.1


class Subscriber(Protocol):
    """Told each state published on its tasks' channels, or that none will come."""

    def deliver(self, meta: Meta) -> None: ...

    def fail(self, error: Exception) -> None: ...


class ResultListener:
    def __init__(self, redis: Redis, stored: StoredResults, timeout: float) -> None:
        self._redis = redis
        self._stored = stored
        self.timeout = timeout  # to confirm a subscription, and to replace a connection
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._starting = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._subscribers: dict[bytes, set[Subscriber]] = {}
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._catching_up: set[asyncio.Task[None]] = set()
        # Under load, many requests' worth in one command.
        self._unsubscribing: Batches[list[bytes], None] = Batches(self._unsubscribe)

    @contextlib.asynccontextmanager
    async def subscribed(
        self, task_ids: list[str], subscriber: Subscriber
    ) -> AsyncIterator[list["asyncio.Future[None]"]]:
        """Tell the subscriber every state its tasks publish within the block; the
        block may work before it awaits confirmed() of the confirmations it gets."""
        channels = [self._stored.key_of(task_id) for task_id in task_ids]
        pubsub = await self._start()
        loop = asyncio.get_running_loop()
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(subscriber)
            self._confirmations.setdefault(channel, loop.create_future())
        confirmations = [self._confirmations[channel] for channel in channels]
        try:
            with redis_unavailable():
                async with asyncio.timeout(self.timeout):
                    await pubsub.subscribe(*channels)
            yield confirmations
        finally:
            for channel in channels:
                remaining = self._subscribers.get(channel, set())
                remaining.discard(subscriber)
                if not remaining:
                    self._subscribers.pop(channel, None)
                    self._confirmations.pop(channel, None)
            self._unsubscribing.add_in_background(channels)

    async def confirmed(self, confirmations: list["asyncio.Future[None]"]) -> None:
        """Return once Redis confirmed: every state published from then on is delivered."""
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*confirmations)
        except TimeoutError:
            # Unconfirmed: the reader opens a new connection.
            if self._listening is not None:
                self._listening.cancel()
            raise RedisUnavailableError("Redis did not confirm the subscription") from None

    async def close(self) -> None:
        await self._unsubscribing.close()
        await asyncio.gather(*self._catching_up, return_exceptions=True)
        await self._stop()

    async def _start(self) -> PubSub:
        """The connection: opened if none lives, awaited while one is replaced."""
        async with self._starting:
            if self._reader is None or self._reader.done():
                await self._stop()
                self._pubsub = await self._open()
                self._connected.set()
                self._reader = asyncio.create_task(self._read(self._pubsub), name="results")
        try:
            async with asyncio.timeout(self.timeout):
                await self._connected.wait()
        except TimeoutError:
            raise RedisUnavailableError("Redis is being reconnected") from None
        assert self._pubsub is not None
        return self._pubsub

    async def _open(self) -> PubSub:
        """A new connection, subscribed to every channel somebody listens to."""
        pubsub = self._redis.pubsub()
        try:
            with redis_unavailable():
                async with asyncio.timeout(self.timeout):
                    await pubsub.subscribe(IDLE_CHANNEL, *self._subscribers)
        except BaseException:  # cancelled too: the pool gets the connection back
            # redis types aclose() from 8.2 on: the ignore is for the versions before.
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            raise
        return pubsub

    async def _stop(self) -> None:
        self._connected.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            self._pubsub = None

    async def _read(self, pubsub: PubSub) -> None:
        """Listen; when the connection is lost, replace it and go on."""
        try:
            while True:
                self._listening = asyncio.create_task(self._listen(pubsub))
                try:
                    await asyncio.wait([self._listening])
                except asyncio.CancelledError:
                    self._listening.cancel()
                    raise
                pubsub = await self._reconnect(pubsub)
        except asyncio.CancelledError:
            self._fail_everyone(RedisUnavailableError("the result listener stopped"))
            raise
        except RedisUnavailableError as error:
            # Redis stayed away: the next subscriber starts a new reader.
            self._connected.clear()
            self._fail_everyone(error)

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                self._handle(message)
        except Exception as error:  # the connection is gone
            logger.warning("Result listener lost Redis: %r", error)

    async def _reconnect(self, lost: PubSub) -> PubSub:
        self._connected.clear()
        self._pubsub = None  # nobody unsubscribes on the lost connection meanwhile
        with contextlib.suppress(Exception):
            await lost.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                self._pubsub = await self._open()
                break
            except RedisUnavailableError:
                if loop.time() + RECONNECT_PAUSE >= deadline:
                    raise
                await asyncio.sleep(RECONNECT_PAUSE)
        self._connected.set()
        return self._pubsub

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._deliver(channel, message["data"])
        elif kind == "subscribe":
            confirmation = self._confirmations.pop(channel, None)
            if confirmation is not None and not confirmation.done():
                confirmation.set_result(None)
            elif channel in self._subscribers:
                # Subscribed again on a new connection: read what was published meanwhile.
                catching_up = asyncio.create_task(self._catch_up(channel))
                self._catching_up.add(catching_up)
                catching_up.add_done_callback(self._catching_up.discard)

    async def _catch_up(self, channel: bytes) -> None:
        """Read the channel's key, again for a while: a Redis just restarted
        takes subscriptions before it answers reads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while channel in self._subscribers:
            try:
                with redis_unavailable():
                    payload: bytes | str | None = await self._redis.get(channel)
            except RedisUnavailableError as error:
                if loop.time() + RECONNECT_PAUSE < deadline:
                    await asyncio.sleep(RECONNECT_PAUSE)
                    continue
                for subscriber in list(self._subscribers.get(channel, ())):
                    subscriber.fail(error)
                return
            if payload:
                self._deliver(channel, payload)
            return

    def _deliver(self, channel: bytes, payload: bytes | str) -> None:
        subscribers = list(self._subscribers.get(channel, ()))  # one may leave while told
        if not subscribers:
            return
        try:
            meta = self._stored.decode(payload)
        except Exception as error:  # a result that does not decode fails its own subscribers
            for subscriber in subscribers:
                subscriber.fail(error)
            return
        for subscriber in subscribers:
            subscriber.deliver(meta)

    def _fail_everyone(self, error: Exception) -> None:
        for confirmation in self._confirmations.values():
            if not confirmation.done():
                confirmation.set_exception(error)
        for subscribers in list(self._subscribers.values()):
            for subscriber in list(subscribers):
                subscriber.fail(error)

    async def _unsubscribe(self, batch: list[list[bytes]]) -> list[None]:
        """Unsubscribe from the channels nobody listens to again meanwhile."""
        unwanted = [
            channel for group in batch for channel in group if channel not in self._subscribers
        ]
        if unwanted and self._pubsub is not None:
            with contextlib.suppress(Exception):  # a lost connection has no subscriptions
                await self._pubsub.unsubscribe(*unwanted)
        return [None] * len(batch)
