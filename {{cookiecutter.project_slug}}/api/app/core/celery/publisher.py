"""Publishing without blocking the event loop, and without a thread.

aio-pika sends the messages that Celery built (messages.py) over one robust
connection, through a bounded pool of channels in confirm mode: the broker
acknowledges every message, and many confirms are awaited at once. A request
that cannot publish within the deadline (no channel free, no connection, no
confirm) gets BrokerUnavailableError, which the routes answer with 503.
"""

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from aio_pika.pool import Pool
from celery import Celery
from celery.canvas import Signature
from kombu.exceptions import OperationalError

from app.core.celery.messages import OutgoingMessage, build_messages

logger = logging.getLogger(__name__)


class BrokerUnavailableError(Exception):
    """The message could not be handed to the broker within the deadline."""


class Publisher:
    def __init__(self, client: Celery, url: str, pool_size: int, deadline: float) -> None:
        self.client = client
        self.url = url
        self.deadline = deadline
        self.connection: AbstractRobustConnection | None = None
        self.connecting = asyncio.Lock()
        # At most pool_size publishes at once; the others wait for a channel,
        # within the deadline.
        self.channels: Pool[AbstractChannel] = Pool(self.open_channel, max_size=pool_size)
        self.declared: set[str] = set()
        # Publishes whose confirm is still awaited after their request ended.
        self.unfinished: set[asyncio.Future[None]] = set()

    async def connect(self) -> AbstractRobustConnection:
        """One connection per process; after it is lost, aio-pika reconnects it."""
        async with self.connecting:
            if self.connection is None:
                self.connection = await aio_pika.connect_robust(self.url, timeout=self.deadline)
            return self.connection

    async def open_channel(self) -> AbstractChannel:
        connection = await self.connect()
        return await connection.channel(publisher_confirms=True)

    async def publish(self, signature: Signature) -> None:
        messages = build_messages(signature)
        try:
            async with asyncio.timeout(self.deadline), self.channels.acquire() as channel:
                await self.declare_queues(channel, messages)
                await asyncio.gather(*(self.send(channel, message) for message in messages))
        except (TimeoutError, AMQPError, OSError) as error:
            logger.warning("Broker unavailable: %r", error)
            raise BrokerUnavailableError from error

    async def declare_queues(
        self, channel: AbstractChannel, messages: list[OutgoingMessage]
    ) -> None:
        """Make sure the queues exist, once per process: a message routed to a
        queue nobody declared yet would be dropped."""
        for queue in {
            queue.name: queue for message in messages for queue in message.declare
        }.values():
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
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=message.headers,
                delivery_mode=message.delivery_mode,
                correlation_id=message.properties.get("correlation_id"),
                reply_to=message.properties.get("reply_to"),
                priority=message.properties.get("priority"),
            ),
            routing_key=message.routing_key,
        )

    def finish_in_background(self, publishing: "asyncio.Future[None]") -> None:
        """Let a publish await its confirm after the request that started it
        got its answer (the result came first), and log if it failed."""
        if publishing.done():
            if not publishing.cancelled():
                publishing.exception()  # already raised to the request, or None
            return
        self.unfinished.add(publishing)
        publishing.add_done_callback(self.unfinished.discard)

    async def revoke(self, task_ids: list[str]) -> None:
        """Ask every worker to drop these tasks, and to stop them if they run.

        Celery's broadcast is synchronous; revoking is rare, so it borrows a
        thread of the default pool for the moment it takes.
        """
        try:
            async with asyncio.timeout(self.deadline):
                await asyncio.to_thread(self.client.control.revoke, task_ids, terminate=True)
        except (TimeoutError, OperationalError, OSError) as error:
            raise BrokerUnavailableError from error

    async def close(self) -> None:
        await asyncio.gather(*self.unfinished, return_exceptions=True)
        await self.channels.close()
        if self.connection is not None:
            await self.connection.close()
