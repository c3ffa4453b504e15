"""Publishing without a thread: aio-pika sends the messages over one connection
per process, to one node of the broker, through a bounded pool of confirming
channels. What is not published within the timeout (no channel, no connection,
no confirm, a message the broker could not route) is a BrokerUnavailableError;
a lost connection is opened again by the next publish, to the next node when
the broker is a cluster."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.connection import make_url
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, AMQPChannelError, DeliveryError
from kombu.transport.native_delayed_delivery import CELERY_DELAYED_DELIVERY_EXCHANGE
from redis.asyncio import Redis

from taskengine.celery_messages import ChordSize, Message, Outgoing
from taskengine.config import broker_urls
from taskengine.errors import BrokerUnavailableError, redis_unavailable
from taskengine.queues import dead_letter_queue_arguments

logger = logging.getLogger(__name__)

# What the broker says of one channel, or of one message, over a connection
# that stays sound.
ONE_CHANNEL_ERRORS = (AMQPChannelError, DeliveryError)


class Publisher:
    def __init__(self, url: str, redis: Redis, timeout: float, pool_size: int) -> None:
        self._urls = broker_urls(url)
        self._next_url = 0
        self._redis = redis
        self.timeout = timeout
        self._connection: AbstractConnection | None = None
        self._connecting = asyncio.Lock()
        self._slots = asyncio.Semaphore(pool_size)
        # Channels ready for a publish, with their connection.
        self._idle: list[tuple[AbstractConnection, AbstractChannel]] = []
        self._declared: set[str] = set()
        # Publishes whose confirm is awaited after their request ended.
        self._unfinished: set[asyncio.Future[None]] = set()

    async def publish(self, outgoing: Outgoing) -> None:
        """Write the chord sizes, then send the messages and await their confirms."""
        await self._write_chord_sizes(outgoing.chord_sizes)
        messages = outgoing.messages
        connection = None
        try:
            async with asyncio.timeout(self.timeout), self._channel() as (connection, channel):
                await self._declare_queues(channel, messages)
                await asyncio.gather(*(self._send(channel, message) for message in messages))
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as error:
            # A queue deleted since it was declared is declared again next time.
            self._declared.clear()
            # Not for a refusal of the channel (a queue declared otherwise, a
            # message that could not be routed): the others' publishes go on.
            if connection is not None and not isinstance(error, ONE_CHANNEL_ERRORS):
                self._drop_connection(connection)
            logger.warning("Broker unavailable: %r", error)
            raise BrokerUnavailableError(repr(error)) from error

    def finish_in_background(self, publishing: "asyncio.Future[None]") -> None:
        """Let a publish await its confirm after its request got its answer."""
        if publishing.done():
            if not publishing.cancelled():
                publishing.exception()  # raised to the request already, or None
            return
        self._unfinished.add(publishing)
        publishing.add_done_callback(self._unfinished.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._unfinished, return_exceptions=True)
        for _, channel in self._idle:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await channel.close()
        if self._connection is not None:
            await self._connection.close()

    async def _write_chord_sizes(self, chord_sizes: list[ChordSize]) -> None:
        """Before the header is sent: the worker that ends its last task reads the size."""
        if not chord_sizes:
            return
        with redis_unavailable():
            async with asyncio.timeout(self.timeout), self._redis.pipeline() as pipe:
                for chord in chord_sizes:
                    pipe.delete(chord.counter_key)  # a chord sent again counts anew
                    pipe.set(chord.size_key, chord.size, ex=chord.expires)
                await pipe.execute()

    async def _connect(self) -> AbstractConnection:
        """The process's connection, opened again once lost."""
        async with self._connecting:
            if self._connection is None or self._connection.is_closed:
                self._connection = await self._open()
            return self._connection

    def _drop_connection(self, connection: AbstractConnection) -> None:
        """Leave a connection that failed a publish, unless it was left already:
        its node may be gone without a word (a lost machine sends no reset, and
        heartbeats take a minute to tell), or aio-pika may still call it open
        after the broker closed it. The next publish opens another, to the next
        node of a cluster; this one is closed in the background."""
        if connection is not self._connection:
            return
        self._connection = None
        self._idle.clear()  # its channels
        closing = asyncio.ensure_future(connection.close())
        self._unfinished.add(closing)
        closing.add_done_callback(self._unfinished.discard)

    async def _open(self) -> AbstractConnection:
        """A connection to the first node that takes one, each tried in turn from
        the one after the last tried: a node that is down, or too slow for the
        publish's timeout, costs one publish, not every publish after it."""
        failure: BaseException | None = None
        for _ in self._urls:
            url = self._urls[self._next_url]
            self._next_url = (self._next_url + 1) % len(self._urls)
            connection = aio_pika.Connection(make_url(url))
            try:
                await connection.connect(timeout=self.timeout)
                return connection
            except BaseException as error:
                # Cut short or failed: closed, not left to the garbage collector.
                with contextlib.suppress(Exception):
                    await connection.close()
                if not isinstance(error, (TimeoutError, *CONNECTION_EXCEPTIONS)):
                    raise
                failure = error
        assert failure is not None  # there is at least one URL (broker_urls)
        raise failure

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[tuple[AbstractConnection, AbstractChannel]]:
        """One of at most pool_size channels, with its connection; one the
        broker closed is dropped."""
        async with self._slots:
            while self._idle and self._idle[-1][1].is_closed:
                self._idle.pop()
            if self._idle:
                connection, channel = self._idle.pop()
            else:
                connection = await self._connect()
                try:
                    # A message the broker cannot route comes back: a failure too.
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                except BaseException:
                    self._drop_connection(connection)
                    raise
            try:
                yield connection, channel
            finally:
                # Not one of a connection left meanwhile.
                if not channel.is_closed and connection is self._connection:
                    self._idle.append((connection, channel))

    async def _declare_queues(self, channel: AbstractChannel, messages: list[Message]) -> None:
        """Once per process: a message to a queue nobody declared comes back
        unrouted. Its dead-letter queue first: RabbitMQ drops what it would
        dead-letter to a queue that does not exist."""
        queues = {queue.name: queue for message in messages for queue in message.declare}
        for name, queue in queues.items():
            if name not in self._declared:
                arguments = queue.queue_arguments or {}
                dead_letters = arguments.get("x-dead-letter-routing-key")
                if dead_letters:
                    queue_type = arguments.get("x-queue-type", "classic")
                    await channel.declare_queue(
                        dead_letters,
                        durable=True,
                        arguments=dead_letter_queue_arguments(queue_type),
                    )
                declared = await channel.declare_queue(
                    name,
                    durable=queue.durable,
                    auto_delete=queue.auto_delete,
                    arguments=queue.queue_arguments,
                )
                # Celery sends through the queue's own exchange unless it is a
                # direct one of the queue's name (then through the default).
                if queue.exchange.type != "direct":
                    exchange = await channel.declare_exchange(
                        queue.exchange.name, queue.exchange.type, durable=queue.exchange.durable
                    )
                    await declared.bind(exchange, queue.routing_key)
                    await self._bind_to_delayed_delivery(
                        channel, exchange, declared, queue.routing_key
                    )
                self._declared.add(name)

    async def _bind_to_delayed_delivery(
        self,
        channel: AbstractChannel,
        exchange: AbstractExchange,
        queue: AbstractQueue,
        routing_key: str,
    ) -> None:
        """RabbitMQ hands a delayed task (countdown, ETA) to its queue, once due,
        through Celery's delivery exchange: bound as a worker of the queue binds
        it (worker/consumer.py), so that a queue none consumed yet gets its task."""
        delivery = await channel.declare_exchange(
            CELERY_DELAYED_DELIVERY_EXCHANGE, "topic", durable=True
        )
        await exchange.bind(delivery, f"#.{routing_key}")
        await queue.bind(exchange, f"#.{routing_key}")

    async def _send(self, channel: AbstractChannel, message: Message) -> None:
        exchange = channel.default_exchange
        if message.exchange:
            exchange = await channel.get_exchange(message.exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=message.headers,
                # Its expiration in seconds, as Celery gives it: RabbitMQ drops it then.
                **message.properties,
            ),
            routing_key=message.routing_key,
        )
