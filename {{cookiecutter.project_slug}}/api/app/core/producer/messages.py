"""Celery builds the messages; nothing here touches the network.

Celery's canvas (chains, groups, chords) knows how to turn a workflow into task
messages, but sends each one through a blocking kombu producer as it goes. Here
`apply_async` runs against a stand-in producer that keeps the messages, and the
publisher then sends them without blocking the event loop.

A single task's message is built by Celery once per task name, queue and
serializer, and then filled in (MessageTemplates): the canvas took about
150 us of CPU per message, a tenth of the API's whole share of a task.
tests/test_messages.py checks that a filled message is what Celery builds.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.canvas import Signature
from celery.utils.saferepr import saferepr
from kombu.serialization import dumps

from app.core.producer.chord_sizes import ChordSize


@dataclass
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    delivery_mode: int
    properties: dict[str, Any]
    # kombu Queue objects: the queues to declare before sending.
    declare: list[Any] = field(default_factory=list)


@dataclass
class Outgoing:
    """What sending a signature takes: Redis writes first, then messages."""

    chord_sizes: list[ChordSize] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)


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
        *,
        exchange: str,
        routing_key: str,
        serializer: str,
        headers: dict[str, Any],
        delivery_mode: int,
        declare: list[Any] | None = None,
        compression: str | None = None,
        retry: bool | None = None,
        retry_policy: dict[str, Any] | None = None,
        timeout: float | None = None,
        confirm_timeout: float | None = None,
        **properties: Any,
    ) -> None:
        if compression:
            raise ValueError("compressed task messages are not supported")
        content_type, content_encoding, payload = dumps(  # type: ignore[no-untyped-call]
            body, serializer=serializer
        )
        self.outgoing.messages.append(
            OutgoingMessage(
                exchange=exchange,
                routing_key=routing_key,
                body=payload if isinstance(payload, bytes) else payload.encode(content_encoding),
                content_type=content_type,
                content_encoding=content_encoding,
                headers=headers,
                delivery_mode=delivery_mode,
                properties=properties,
                declare=list(declare or []),
            )
        )


# The capture of the apply_async running in this context, if any.
current_capture: ContextVar[MessageCapture | None] = ContextVar("current_capture", default=None)


def capture_in_progress() -> MessageCapture:
    capture = current_capture.get()
    if capture is None:
        raise RuntimeError("messages are built inside build_messages() only")
    return capture


class MessageBuildingCelery(Celery):  # type: ignore[misc]
    """A Celery app whose apply_async builds messages into the current capture
    (the canvas asks the app for its producer at every step)."""

    @contextmanager
    def producer_or_acquire(self, producer: Any = None) -> Iterator[Any]:
        yield capture_in_progress()


def build_messages(signature: Signature) -> Outgoing:
    """Everything that sending this signature (and its canvas) takes."""
    capture = MessageCapture()
    token = current_capture.set(capture)
    try:
        signature.apply_async()
    finally:
        current_capture.reset(token)
    return capture.outgoing


# What a single task's signature carries once frozen (Catalog.task, then
# freeze()): its message differs from another of the same task, queue and
# serializer only where fill() writes. Anything else (a link, a countdown, a
# workflow) goes through Celery's canvas.
SINGLE_TASK_OPTIONS = frozenset({"queue", "serializer", "expires", "task_id", "reply_to"})
# The body's last part: no callbacks, no workflow around the task.
NO_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class MessageTemplates:
    """Messages of single tasks, filled in from one Celery built per task
    name, queue and serializer."""

    def __init__(self, app: Celery) -> None:
        # How Celery cuts the arguments' repr in the headers, read once: its
        # configuration is slow to read.
        self.args_repr_size = app.amqp.argsrepr_maxsize
        self.kwargs_repr_size = app.amqp.kwargsrepr_maxsize
        self.repr_levels = app.conf.task_repr_maxlevels
        self.empty_kwargs_repr = self.repr_of({}, self.kwargs_repr_size)
        self._templates: dict[tuple[str, str, str], OutgoingMessage] = {}

    def build(self, signature: Signature) -> Outgoing:
        """What sending the signature takes (build_messages), filled in when it can be."""
        options = signature.options
        if (
            type(signature) is not Signature
            or not options.keys() <= SINGLE_TASK_OPTIONS
            or not isinstance(options.get("expires"), datetime)
        ):
            return build_messages(signature)
        key = (signature.task, options["queue"], options["serializer"])
        template = self._templates.get(key)
        if template is None:
            outgoing = build_messages(signature)
            self._templates[key] = outgoing.messages[0]
            return outgoing
        return Outgoing(messages=[self.fill(template, signature)])

    def fill(self, template: OutgoingMessage, signature: Signature) -> OutgoingMessage:
        """The template with this signature's id, arguments and expiry, as
        Celery's as_task_v2 and send_task write them."""
        options = signature.options
        task_id: str = options["task_id"]
        expires: datetime = options["expires"]
        args, kwargs = tuple(signature.args), dict(signature.kwargs)
        content_type, content_encoding, payload = dumps(  # type: ignore[no-untyped-call]
            (args, kwargs, NO_EMBED), serializer=options["serializer"]
        )
        return replace(
            template,
            body=payload if isinstance(payload, bytes) else payload.encode(content_encoding),
            content_type=content_type,
            content_encoding=content_encoding,
            headers={
                **template.headers,
                "id": task_id,
                "root_id": task_id,
                "expires": expires.isoformat(),
                "argsrepr": self.repr_of(args, self.args_repr_size),
                "kwargsrepr": (
                    self.repr_of(kwargs, self.kwargs_repr_size)
                    if kwargs
                    else self.empty_kwargs_repr
                ),
            },
            properties={
                **template.properties,
                "correlation_id": task_id,
                # Seconds left, as the broker's per-message TTL (never below 0).
                "expiration": max(0.0, (expires - datetime.now(UTC)).total_seconds()),
            },
        )

    def repr_of(self, arguments: object, size: int) -> str:
        return str(saferepr(arguments, size, maxlevels=self.repr_levels))
