"""Publishing without blocking the event loop, and without a thread.

aio-pika sends the messages that Celery built (messages.py) over one robust
connection, through a bounded pool of channels in confirm mode: the broker
acknowledges every message, and many confirms are awaited at once. A request
that cannot publish within the deadline (no channel free, no connection, no
confirm, a message the broker could not route) gets BrokerUnavailableError,
which the routes answer with 503.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.connection import make_url
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from celery.canvas import Signature
from redis.asyncio import Redis

from app.core.producer.chord_sizes import write_chord_sizes
from app.core.producer.errors import BrokerUnavailableError
from app.core.producer.messages import MessageTemplates, OutgoingMessage

logger = logging.getLogger(__name__)

# Seconds between attempts to reconnect to the broker.
RECONNECT_INTERVAL = 1


class ChannelPool:
    """At most `size` channels in use at once; a channel the broker or the
    connection closed is dropped, never handed out again."""

    def __init__(self, open_channel: Callable[[], Awaitable[AbstractChannel]], size: int) -> None:
        self.open_channel = open_channel
        self.slots = asyncio.Semaphore(size)
        self.idle: list[AbstractChannel] = []

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[AbstractChannel]:
        async with self.slots:
            while self.idle and self.idle[-1].is_closed:
                self.idle.pop()
            channel = self.idle.pop() if self.idle else await self.open_channel()
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    self.idle.append(channel)

    async def close(self) -> None:
        for channel in self.idle:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await channel.close()
        self.idle.clear()


class Publisher:
    def __init__(
        self,
        templates: MessageTemplates,
        redis: Redis,
        url: str,
        pool_size: int,
        deadline: float,
    ) -> None:
        self.templates = templates
        self.redis = redis
        self.url = url
        self.deadline = deadline
        self.connection: AbstractRobustConnection | None = None
        self.connecting = asyncio.Lock()
        self.channels = ChannelPool(self.open_channel, pool_size)
        self.declared: set[str] = set()
        # Publishes whose confirm is still awaited after their request ended.
        self.unfinished: set[asyncio.Future[None]] = set()

    async def connect(self) -> AbstractRobustConnection:
        """One connection per process; after it is lost, aio-pika reconnects it."""
        async with self.connecting:
            if self.connection is None:
                # aio-pika waits 5 s between attempts; a broker back from a
                # restart takes requests again within a second.
                connection = aio_pika.RobustConnection(
                    make_url(self.url), reconnect_interval=RECONNECT_INTERVAL
                )
                try:
                    await connection.connect(timeout=self.deadline)
                except BaseException:
                    # A first attempt cut short (the request's deadline) would
                    # otherwise go on reconnecting in the background, one more
                    # connection for each request of an outage.
                    with contextlib.suppress(Exception):
                        await connection.close()
                    raise
                self.connection = connection
            return self.connection

    async def open_channel(self) -> AbstractChannel:
        connection = await self.connect()
        # A message the broker cannot route comes back: that is a failure too.
        return await connection.channel(publisher_confirms=True, on_return_raises=True)

    async def publish(self, signature: Signature) -> None:
        outgoing = self.templates.build(signature)
        await write_chord_sizes(self.redis, outgoing.chord_sizes, self.deadline)
        try:
            async with asyncio.timeout(self.deadline), self.channels.channel() as channel:
                await self.declare_queues(channel, outgoing.messages)
                await asyncio.gather(
                    *(self.send(channel, message) for message in outgoing.messages)
                )
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as error:
            # A queue deleted since it was declared is declared again next time.
            self.declared.clear()
            logger.warning("Broker unavailable: %r", error)
            raise BrokerUnavailableError from error

    async def declare_queues(
        self, channel: AbstractChannel, messages: list[OutgoingMessage]
    ) -> None:
        """Make sure the queues exist, once per process: a message routed to a
        queue nobody declared yet would come back unrouted."""
        queues = {queue.name: queue for message in messages for queue in message.declare}
        for queue in queues.values():
            if queue.name in self.declared:
                continue
            await channel.declare_queue(
                queue.name,
                durable=queue.durable,
                auto_delete=queue.auto_delete,
                arguments=queue.queue_arguments,
            )
            self.declared.add(queue.name)

    async def send(self, channel: AbstractChannel, message: OutgoingMessage) -> None:
        exchange = (
            await channel.get_exchange(message.exchange, ensure=False)
            if message.exchange
            else channel.default_exchange
        )
        properties = message.properties
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=message.headers,
                delivery_mode=message.delivery_mode,
                correlation_id=properties.get("correlation_id"),
                reply_to=properties.get("reply_to"),
                priority=properties.get("priority"),
                # Seconds, as Celery gives it: the broker drops the message then.
                expiration=properties.get("expiration"),
            ),
            routing_key=message.routing_key,
        )

    def finish_in_background(self, publishing: "asyncio.Future[None]") -> None:
        """Let a publish await its confirm after the request that started it
        got its answer (the result came first)."""
        if publishing.done():
            if not publishing.cancelled():
                publishing.exception()  # already raised to the request, or None
            return
        self.unfinished.add(publishing)
        publishing.add_done_callback(self.unfinished.discard)

    async def close(self) -> None:
        await asyncio.gather(*self.unfinished, return_exceptions=True)
        await self.channels.close()
        if self.connection is not None:
            await self.connection.close()
