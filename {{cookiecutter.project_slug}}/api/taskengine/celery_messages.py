"""Celery builds a signature's messages; nothing here sends them. The one module
that relies on Celery's insides: its canvas publishes each message through a
blocking kombu producer, here a stand-in that keeps them (Celery calls
`producer_or_acquire`, `Producer.publish`, the connection's
`_reraise_as_library_errors`), and its Redis backend keeps a chord's size
(`set_chord_size`) for the publisher. tests/engine/test_celery_messages.py
compares them with Celery's own: it fails the day a release changes them."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery, group
from celery.backends.redis import RedisBackend
from celery.canvas import Signature, chord
from celery.result import AsyncResult, GroupResult, ResultBase
from kombu.entity import Exchange
from kombu.serialization import dumps
from kombu.transport.native_delayed_delivery import MAX_NUMBER_OF_BITS_TO_USE as DELAY_BITS

from taskengine.queues import TaskQueuesAMQP, task_queue

# The AMQP properties that the publisher sends on, as aio_pika.Message's keywords.
PROPERTIES = ("delivery_mode", "correlation_id", "reply_to", "priority", "expiration")


@dataclass
class Message:
    exchange: str
    routing_key: str
    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    declare: list[Any]  # kombu Queues (their hints miss attributes set from options)


@dataclass
class ChordSize:
    """How many header results a chord waits for, under the backend's keys."""

    size_key: bytes
    counter_key: bytes
    size: int
    expires: int | None


@dataclass
class Outgoing:
    """What sending a signature takes: the chord sizes first, then the messages."""

    chord_sizes: list[ChordSize] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


class MessageCapture:
    """Stands in for kombu's Producer: keeps each message Celery publishes."""

    def __init__(self) -> None:
        self.outgoing = Outgoing()

    @property
    def connection(self) -> "MessageCapture":
        return self

    @contextmanager
    def _reraise_as_library_errors(self) -> Iterator[None]:
        yield

    def publish(
        self,
        body: Any,
        exchange: str | Exchange,
        routing_key: str,
        serializer: str,
        headers: dict[str, Any],
        declare: list[Any] | None = None,
        compression: str | None = None,
        **options: Any,
    ) -> None:
        if compression:
            raise ValueError("compressed task messages are not supported")
        content_type, encoding, payload = dumps(body, serializer=serializer)  # type: ignore[no-untyped-call]
        payload = payload.encode(encoding) if isinstance(payload, str) else payload
        properties = {name: options[name] for name in PROPERTIES if name in options}
        queues = list(declare or [])
        # A name, or an Exchange where Celery delays a task with a countdown
        # or an ETA through RabbitMQ (native delayed delivery, quorum queues).
        if isinstance(exchange, Exchange):
            # Celery leaves the queue out then: the publisher declares it all
            # the same, so that a queue no worker declared yet gets the task
            # when it is due instead of RabbitMQ dropping it.
            queues = queues or [task_queue(delayed_queue(routing_key), "quorum")]
            exchange = exchange.name
        message = Message(
            exchange, routing_key, payload, content_type, encoding, headers, properties, queues
        )
        self.outgoing.messages.append(message)


def delayed_queue(routing_key: str) -> str:
    """The queue of a delayed message: its routing key after the delay's 28
    bits (`1.0.0.(...).<queue>`, kombu's native_delayed_delivery)."""
    return routing_key.split(".", DELAY_BITS)[DELAY_BITS]


# The capture of the signature being built in this context.
_capture: ContextVar[MessageCapture] = ContextVar("capture")


class BuildingBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis backend for its keys and decoding: no result consumer (the
    engine listens itself), and a chord's size kept for the publisher to write."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(self, result: Any, *args: Any, **kwargs: Any) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        _capture.get().outgoing.chord_sizes.append(
            ChordSize(
                size_key=self.get_key_for_group(group_id, ".s"),
                counter_key=self.get_key_for_group(group_id, ".c"),
                size=chord_size,
                # Celery 5.5 gave chord keys an expiry of their own; 5.4 used the results'.
                expires=getattr(self, "chord_expires", self.expires) or None,
            )
        )


class MessageBuilder(Celery):  # type: ignore[misc]
    """A Celery app whose canvas, which asks for a producer at every step, gets
    the capture; its queues are declared as the workers declare them
    (taskengine/queues.py)."""

    amqp_cls = TaskQueuesAMQP

    @contextmanager
    def producer_or_acquire(self, producer: Any = None) -> Iterator[MessageCapture]:
        yield _capture.get()


def create_builder(
    broker_url: str, redis_url: str, serializer: str, queue_type: str
) -> MessageBuilder:
    builder = MessageBuilder(
        "taskengine",
        broker=broker_url,
        backend=f"{__name__}:{BuildingBackend.__name__}+{redis_url}",
        set_as_current=False,
    )
    builder.conf.update(
        task_serializer=serializer,
        result_serializer=serializer,
        # JSON stays accepted: Celery's own control messages use it.
        accept_content=sorted({serializer, "json"}),
        result_accept_content=sorted({serializer, "json"}),
        task_default_queue_type=queue_type,
    )
    return builder


@dataclass
class Built:
    """A signature frozen and built: its ids, and what sending it takes."""

    # A task's id, a chain's last task's, a group's or a chord's body's.
    task_id: str
    is_group: bool  # one value per member answers, else one value
    answer_ids: list[str]  # the tasks whose results make the answer
    all_ids: list[str]
    outgoing: Outgoing


def build(
    builder: MessageBuilder, signature: Signature, *, queue: str, serializer: str, expires: datetime
) -> Built:
    """Every task of the signature given its queue (unless it names one), the
    serializer and the expiry; the signature frozen, and its messages built."""
    for task in each_task(signature):
        task.set(queue=task.options.get("queue") or queue, serializer=serializer, expires=expires)
    # Signatures made without an app (celery.signature, chain...) use the
    # current one: this one, for as long as this build runs (no await in it).
    builder.set_current()
    result = signature.freeze()
    capture = MessageCapture()
    token = _capture.set(capture)
    try:
        signature.apply_async()
    finally:
        _capture.reset(token)
    is_group = isinstance(result, GroupResult)
    answer_ids = [item.id for item in (result.results if is_group else [result])]
    return Built(result.id, is_group, answer_ids, every_id(result), capture.outgoing)


def each_task(signature: Signature) -> Iterator[Signature]:
    if isinstance(signature, chord):
        parts = [*signature.tasks, signature.body]
    elif isinstance(signature, group) or signature.subtask_type == "chain":
        parts = list(signature.tasks)
    else:
        yield signature
        return
    for part in parts:
        yield from each_task(part)


def every_id(result: ResultBase) -> list[str]:
    """The ids of a result, of its group's members and of its parents."""
    found: list[str] = []
    pending: list[ResultBase | None] = [result]
    while pending:
        item = pending.pop()
        if isinstance(item, GroupResult):
            pending.extend(item.results)
        elif isinstance(item, AsyncResult):
            found.append(item.id)
        if item is not None:
            pending.append(item.parent)
    return found
