"""Waiting for results: one Redis pub/sub subscriber per process.

The worker's Redis backend stores each state of a task under
`celery-task-meta-<id>` and publishes it on a channel of the same name. A
waiter subscribes to its tasks' channels and sends them once Redis confirmed
the subscription, so every state they publish reaches it; a follower of tasks
sent earlier reads their keys once subscribed (a state stored before is not
missed). Both await futures that the single reader task resolves. No thread,
no polling.

A request that waits is told the final state only (watching); a follower, one
that shows progress as it happens, is told every state on the way (following).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.core.batches import Batches
from app.core.producer.errors import ResultBackendUnavailableError

logger = logging.getLogger(__name__)

Meta = dict[str, Any]  # what Celery stores for a task: status, result, traceback...

# Subscribed for as long as the listener lives, so that the reader always has
# a subscription to listen on, even between requests.
IDLE_CHANNEL = "api-result-listener-idle"
# Seconds between attempts to replace a lost connection.
RECONNECT_PAUSE = 0.1


class Subscriber(Protocol):
    """Told each state published on the channels it subscribed to, or that no
    more will come."""

    def deliver(self, meta: Meta) -> None: ...

    def fail(self, error: Exception) -> None: ...


class FinalState:
    """Resolves a future with a task's final meta, and ignores the states before."""

    __slots__ = ("future",)

    def __init__(self, future: "asyncio.Future[Meta]") -> None:
        self.future = future

    def deliver(self, meta: Meta) -> None:
        if meta["status"] in states.READY_STATES and not self.future.done():
            self.future.set_result(meta)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class ResultListener:
    def __init__(
        self, redis: Redis, backend: BaseKeyValueStoreBackend, confirm_timeout: float
    ) -> None:
        self._redis = redis
        self._backend = backend
        # Seconds Redis gets to confirm a subscription or answer a PING, and
        # that a lost connection has to be replaced before its waiters fail.
        self.confirm_timeout = confirm_timeout
        self._pubsub: PubSub | None = None
        # Set while a connection is up; cleared while a lost one is replaced.
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._pong: asyncio.Future[None] | None = None
        # channel -> who is told each state published on it
        self._subscribers: dict[bytes, set[Subscriber]] = {}
        # channel -> future resolved once Redis confirmed the subscription
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._starting = asyncio.Lock()
        # Reads of states published while no connection listened.
        self._catching_up: set[asyncio.Task[None]] = set()
        # Results to delete, and channels nobody listens to any more: under
        # load, many requests' worth in one command.
        self._forgetting = Batches(self._forget_batch)
        self._unsubscribing = Batches(self._unsubscribe_batch)

    def meta_key(self, task_id: str) -> bytes:
        """The Redis key of a task's result; the backend also publishes the
        result on a pub/sub channel of the same name."""
        key: bytes = self._backend.get_key_for_task(task_id)
        return key

    async def _start(self) -> PubSub:
        """The connection to subscribe on: opened on first use, and again
        after the last one was lost for good; waited for while a lost one is
        being replaced."""
        async with self._starting:
            if self._reader is None or self._reader.done():
                await self._stop_reading()
                pubsub = await self._open()
                self._pubsub = pubsub
                self._connected.set()
                self._reader = asyncio.create_task(self._read(pubsub), name="result-listener")
        if not self._connected.is_set():
            try:
                async with asyncio.timeout(self.confirm_timeout):
                    await self._connected.wait()
            except TimeoutError:
                raise ResultBackendUnavailableError("Redis is being reconnected") from None
        assert self._pubsub is not None
        return self._pubsub

    async def _open(self) -> PubSub:
        """A new connection, subscribed to every channel somebody waits on."""
        pubsub = self._redis.pubsub()
        try:
            # A Redis that accepts the connection and never answers must not
            # hold anyone longer than a subscription may take.
            async with asyncio.timeout(self.confirm_timeout):
                await pubsub.subscribe(IDLE_CHANNEL, *self._subscribers)
        except BaseException as error:  # cancelled too: the pool gets it back
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            if isinstance(error, Exception):  # redis raises several unrelated types
                raise ResultBackendUnavailableError from error
            raise
        return pubsub

    def check_connection(self) -> None:
        """A subscription went unconfirmed in time: PING the connection, and
        replace it if no answer comes either. Its waiters keep waiting."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check(), name="result-listener-check")

    async def _check(self) -> None:
        pubsub, listening = self._pubsub, self._listening
        if pubsub is None or listening is None or listening.done():
            return
        self._pong = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await pubsub.ping()
                await self._pong
        except Exception as error:  # TimeoutError, or redis' own
            logger.warning("Result listener: Redis did not answer a PING (%r); reconnecting", error)
            listening.cancel()

    async def _stop_reading(self) -> None:
        """Stop the reader and close its connection (a new one replaces them)."""
        self._connected.clear()
        for task in (self._checking, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._reader = self._checking = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def close(self) -> None:
        await self._forgetting.close()
        await self._unsubscribing.close()
        await asyncio.gather(*self._catching_up, return_exceptions=True)
        await self._stop_reading()

    async def _read(self, pubsub: PubSub) -> None:
        """Listen on the connection; when it is lost, replace it and go on:
        a lost connection fails nobody unless Redis stays away."""
        try:
            while True:
                listening = asyncio.create_task(self._listen(pubsub))
                self._listening = listening
                try:
                    await asyncio.wait([listening])
                except asyncio.CancelledError:
                    listening.cancel()
                    raise
                pubsub = await self._reconnect(pubsub)
        except asyncio.CancelledError:
            # Closed: nothing more will arrive.
            self._fail_everyone(ResultBackendUnavailableError("the result listener stopped"))
            raise
        except ResultBackendUnavailableError as error:
            # Redis stayed away: the next waiter starts a new reader.
            self._connected.clear()
            self._fail_everyone(error)

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                self._handle(message)
        except Exception as error:  # the connection is gone
            logger.warning("Result listener lost Redis: %r", error)

    async def _reconnect(self, lost: PubSub) -> PubSub:
        """A new connection within confirm_timeout, subscribed to every
        channel of the lost one; ResultBackendUnavailableError if Redis does
        not come back in time."""
        self._connected.clear()
        # Nobody unsubscribes on the closed connection meanwhile (which would
        # take a connection from the pool for it, never given back).
        self._pubsub = None
        with contextlib.suppress(Exception):
            await lost.aclose()  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        while True:
            try:
                pubsub = await self._open()
                break
            except ResultBackendUnavailableError:
                if loop.time() + RECONNECT_PAUSE >= deadline:
                    raise
                await asyncio.sleep(RECONNECT_PAUSE)
        self._pubsub = pubsub
        self._connected.set()
        return pubsub

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._deliver(channel, message["data"])
        elif kind == "subscribe":
            confirmation = self._confirmations.pop(channel, None)
            if confirmation is not None and not confirmation.done():
                confirmation.set_result(None)
            elif channel in self._subscribers:
                # Subscribed again on a new connection: what was published
                # meanwhile is read from its key.
                self._catch_up(channel)
        elif kind == "pong" and self._pong is not None and not self._pong.done():
            self._pong.set_result(None)

    def _catch_up(self, channel: bytes) -> None:
        task = asyncio.create_task(self._read_missed(channel))
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def _read_missed(self, channel: bytes) -> None:
        """Read the channel's key, trying again for a while: a Redis that has
        just restarted takes subscriptions before it answers reads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        while channel in self._subscribers:
            try:
                payload = await self._redis.get(channel)
            except Exception as error:  # redis raises several unrelated types
                if loop.time() + RECONNECT_PAUSE >= deadline:
                    logger.warning("Result listener could not read %r: %r", channel, error)
                    self._fail_channel(channel, ResultBackendUnavailableError(repr(error)))
                    return
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            if payload:
                self._deliver(channel, payload)
            return

    def _fail_channel(self, channel: bytes, error: Exception) -> None:
        for subscriber in list(self._subscribers.get(channel, ())):
            subscriber.fail(error)

    def _fail_everyone(self, error: Exception) -> None:
        if self._pong is not None and not self._pong.done():
            self._pong.set_exception(error)
        for confirmation in self._confirmations.values():
            if not confirmation.done():
                confirmation.set_exception(error)
        for subscribers in list(self._subscribers.values()):
            for subscriber in list(subscribers):
                subscriber.fail(error)

    def _deliver(self, channel: bytes, payload: bytes | str) -> None:
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return
        try:
            meta = self._decode(payload)
        except Exception as error:  # one bad result fails its own subscribers only
            for subscriber in list(subscribers):
                subscriber.fail(error)
            return
        # A copy: a subscriber may leave while it is told.
        for subscriber in list(subscribers):
            subscriber.deliver(meta)

    @property
    def channel_count(self) -> int:
        """Task channels subscribed to now (the idle channel aside)."""
        return len(self._subscribers)

    def _decode(self, payload: bytes | str) -> Meta:
        meta: Meta = self._backend.decode_result(payload)
        return meta

    @contextlib.asynccontextmanager
    async def _subscribed(
        self, subscribers: dict[bytes, Subscriber]
    ) -> AsyncIterator[list["asyncio.Future[None]"]]:
        """Subscribe to the channels for the duration of the block; yields the
        futures that Redis' confirmations resolve.

        The SUBSCRIBE is sent at once and confirmed in the background, so the
        block can do other work meanwhile (a waiter writes its record);
        Subscription.confirmed() waits for the confirmations.
        """
        pubsub = await self._start()
        loop = asyncio.get_running_loop()
        for channel, subscriber in subscribers.items():
            self._subscribers.setdefault(channel, set()).add(subscriber)
            self._confirmations.setdefault(channel, loop.create_future())
        confirmations = [self._confirmations[channel] for channel in subscribers]
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await pubsub.subscribe(*subscribers)
        except BaseException as error:  # cancelled too: nobody stays registered
            self._unregister(subscribers)
            if isinstance(error, Exception):
                raise ResultBackendUnavailableError from error
            raise
        try:
            yield confirmations
        finally:
            self._unregister(subscribers)
            self._unsubscribing.add_in_background(list(subscribers))

    async def _unsubscribe_batch(self, batch: list[list[bytes]]) -> None:
        """Unsubscribe from the channels that nobody has subscribed to again
        meanwhile, on the connection of now (one that replaced a lost one
        subscribed again to every channel still listened to then)."""
        unwanted = [
            channel
            for channels in batch
            for channel in channels
            if channel not in self._subscribers
        ]
        if unwanted and self._pubsub is not None:
            with contextlib.suppress(Exception):  # a lost connection has no subscriptions
                await self._pubsub.unsubscribe(*unwanted)

    def _unregister(self, subscribers: dict[bytes, Subscriber]) -> None:
        for channel, subscriber in subscribers.items():
            remaining = self._subscribers.get(channel)
            if remaining is not None:
                remaining.discard(subscriber)
                if not remaining:
                    del self._subscribers[channel]
                    self._confirmations.pop(channel, None)

    @contextlib.asynccontextmanager
    async def watching(self, task_ids: Iterable[str]) -> AsyncIterator["Watch"]:
        """Wait for the tasks' final states: Watch.results() within the block."""
        loop = asyncio.get_running_loop()
        channels = {task_id: self.meta_key(task_id) for task_id in task_ids}
        futures: dict[bytes, asyncio.Future[Meta]] = {
            channel: loop.create_future() for channel in channels.values()
        }
        subscribers: dict[bytes, Subscriber] = {
            channel: FinalState(future) for channel, future in futures.items()
        }
        try:
            async with self._subscribed(subscribers) as confirmations:
                yield Watch(self, list(channels), confirmations, futures)
        finally:
            for future in futures.values():
                future.cancel()

    @contextlib.asynccontextmanager
    async def following(
        self, task_ids: Iterable[str], subscriber: Subscriber
    ) -> AsyncIterator["Subscription"]:
        """Tell the subscriber every state the tasks publish within the block
        (each meta carries its "task_id"); Subscription.stored() gives the
        states stored before."""
        task_ids = list(task_ids)
        subscribers = {self.meta_key(task_id): subscriber for task_id in task_ids}
        async with self._subscribed(subscribers) as confirmations:
            yield Subscription(self, task_ids, confirmations)

    async def fetch(self, task_ids: list[str]) -> list[Meta | None]:
        """The stored state of each task, None when nothing is stored (yet)."""
        try:
            payloads = await self._redis.mget([self.meta_key(task_id) for task_id in task_ids])
        except Exception as error:
            raise ResultBackendUnavailableError from error
        return [self._decode(payload) if payload else None for payload in payloads]

    def forget_soon(self, task_ids: list[str]) -> None:
        """forget() in the background: the reply need not wait for it."""
        self._forgetting.add_in_background(task_ids)

    async def _forget_batch(self, batch: list[list[str]]) -> None:
        await self.forget([task_id for task_ids in batch for task_id in task_ids])

    async def forget(self, task_ids: list[str]) -> None:
        """Delete delivered results: nobody will ask Redis for them again."""
        if task_ids:
            with contextlib.suppress(Exception):  # they expire anyway
                await self._redis.delete(*(self.meta_key(task_id) for task_id in task_ids))


class Subscription:
    """A block's subscription to its tasks' channels, made by the listener."""

    def __init__(
        self,
        listener: ResultListener,
        task_ids: list[str],
        confirmations: list["asyncio.Future[None]"],
    ) -> None:
        self._listener = listener
        self.task_ids = task_ids
        self._confirmations = confirmations

    async def confirmed(self) -> None:
        """Return once Redis confirmed the subscription: every state published
        from then on is delivered."""
        try:
            async with asyncio.timeout(self._listener.confirm_timeout):
                await asyncio.gather(*self._confirmations)
        except TimeoutError:
            # This request gives up; the connection is checked for the others.
            self._listener.check_connection()
            raise ResultBackendUnavailableError("Redis did not confirm the subscription") from None

    async def stored(self) -> list[Meta | None]:
        """Each task's stored state, read once Redis confirmed the subscription:
        a state stored before is read here, any later one is published to us."""
        await self.confirmed()
        return await self._listener.fetch(self.task_ids)


class Watch(Subscription):
    """The futures of one waiter, by channel; made by ResultListener.watching()."""

    def __init__(
        self,
        listener: ResultListener,
        task_ids: list[str],
        confirmations: list["asyncio.Future[None]"],
        futures: dict[bytes, "asyncio.Future[Meta]"],
    ) -> None:
        super().__init__(listener, task_ids, confirmations)
        self._futures = list(futures.values())

    async def results(self) -> list[Meta]:
        """Every task's final meta, in order; cancel to stop waiting. For
        tasks sent after confirmed(): nothing of theirs can be stored before,
        so nothing is read from Redis, only awaited."""
        return list(await asyncio.gather(*self._futures))
