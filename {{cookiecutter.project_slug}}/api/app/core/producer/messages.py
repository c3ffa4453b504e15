"""Celery builds the messages; nothing here touches the network.

Celery's canvas (chains, groups, chords) knows how to turn a workflow into task
messages, but sends each one through a blocking kombu producer as it goes. Here
`apply_async` runs against a stand-in producer that keeps the messages, and the
publisher then sends them without blocking the event loop.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.canvas import Signature
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
