"""The messages the engine builds with Celery's canvas (celery_messages.py) are
the ones Celery itself publishes, and they run on the real worker.

celery_messages.py is the one module of the engine that relies on how Celery
and kombu work inside: its capture stands in for kombu's producer and for the
Redis backend's chord sizes. So these tests put the same frozen signature on a
real RabbitMQ queue both ways, through Celery with a real kombu producer and
through the engine's capture and publisher, read both back with kombu, and
compare them field by field, and the chord sizes with those Celery's Redis
backend writes. They fail the day a Celery or kombu release changes what the
engine relies on.
"""

import pickle
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import celery as celery_package
import kombu
import pytest
from celery import Celery
from celery import group as celery_group
from celery.canvas import Signature
from kombu import Connection
from kombu.serialization import loads, prepare_accept_content
from redis import Redis as BlockingRedis
from redis.asyncio import Redis

from taskengine import TaskEngine
from taskengine.celery_messages import Built, ChordSize, Message, build, create_builder
from taskengine.publisher import Publisher
from testkit import celery_client
from tests.engine.conftest import BROKER_URL, QUEUE_TYPE, REDIS_URL, SERIALIZER
from tests.engine.support import SHAPES, Shape, until_final

# Seconds between Celery's publish and the engine's: each computes the
# seconds left before the expiry (AMQP `expiration`) when it sends.
EXPIRATION_SLACK_MS = 3000

# What a worker of this render decodes: kombu refuses pickle unless asked.
ACCEPTED = prepare_accept_content({SERIALIZER, "json"})

RELEASE_CHANGED = (
    f"The engine no longer sends what Celery {celery_package.__version__} with kombu "
    f"{kombu.__version__} publishes for the same signature. After an upgrade of Celery or "
    "kombu, a release changed what taskengine/celery_messages.py relies on (the canvas "
    "calling producer_or_acquire and Producer.publish, publish's arguments, the Redis "
    "backend's chord keys): fix the capture, or pin the releases that work, before this "
    "render ships. Otherwise celery_messages.py or publisher.py changed what is sent."
)


@pytest.fixture(scope="module")
def celery_itself() -> Iterator[Celery]:
    """A plain Celery app that serializes as the engine's builder does, with
    Celery's own Redis backend."""
    app = celery_client(BROKER_URL, REDIS_URL, SERIALIZER, QUEUE_TYPE)
    yield app
    app.close()


@pytest.fixture
def blocking_redis() -> Iterator[BlockingRedis]:
    client = BlockingRedis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
async def publisher(redis: Redis) -> AsyncIterator[Publisher]:
    """The engine's publisher, on a connection of its own."""
    opened = Publisher(BROKER_URL, redis, timeout=5.0, pool_size=2)
    yield opened
    await opened.close()


@dataclass
class Received:
    """A message as it came off the queue: what a worker gets."""

    exchange: str
    routing_key: str
    content_type: str
    content_encoding: str
    body: Any  # decoded
    headers: dict[str, Any]
    # The other AMQP properties: delivery_mode, correlation_id, reply_to...
    properties: dict[str, Any]


def decoded(body: bytes, content_type: str, content_encoding: str) -> Any:
    return loads(body, content_type, content_encoding, accept=ACCEPTED)


def drain(queue: str, count: int) -> list[Received]:
    """The first `count` messages of the queue, in order, and nothing after."""
    received = []
    with Connection(BROKER_URL) as connection:
        channel = connection.default_channel
        deadline = time.monotonic() + 5
        while len(received) < count + 1 and time.monotonic() < deadline:
            raw = channel.basic_get(queue, no_ack=True)
            if raw is None:
                if len(received) == count:
                    break
                time.sleep(0.02)
                continue
            message = channel.message_to_python(raw)
            properties = dict(message.properties)
            for shown_apart in ("content_type", "content_encoding", "application_headers"):
                properties.pop(shown_apart, None)
            received.append(
                Received(
                    exchange=message.delivery_info["exchange"],
                    routing_key=message.delivery_info["routing_key"],
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    body=decoded(message.body, message.content_type, message.content_encoding),
                    # Less what a quorum queue adds as it delivers.
                    headers={
                        name: value
                        for name, value in message.headers.items()
                        if name != "x-delivery-count"
                    },
                    properties=properties,
                )
            )
    assert len(received) == count, f"{len(received)} messages on {queue}, expected {count}"
    return received


def captured(message: Message) -> Received:
    """A captured message as the fields it is sent with."""
    return Received(
        exchange=message.exchange,
        routing_key=message.routing_key,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        body=decoded(message.body, message.content_type, message.content_encoding),
        headers=message.headers,
        properties=dict(message.properties),
    )


def comparable(message: Received, *, from_the_wire: bool) -> dict[str, Any]:
    """Every field but what must differ between two sends of one message:
    the seconds left before its expiry (kombu and aio-pika send
    milliseconds), counting down between the two. A priority left out is
    kombu's default 0 to RabbitMQ."""
    properties = dict(message.properties)
    expiration = properties.pop("expiration", None)
    if expiration is not None:
        expiration = float(expiration) * (1 if from_the_wire else 1000)
    properties.setdefault("priority", 0)
    return {**vars(message), "properties": properties, "expiration_ms": expiration}


def assert_same(
    ours: list[Received], celerys: list[Received], *, from_the_wire: bool = False
) -> None:
    """The engine's messages (captured, or off the wire) are Celery's, in order."""
    assert len(ours) == len(celerys), (
        f"{len(ours)} messages, Celery {len(celerys)}\n{RELEASE_CHANGED}"
    )
    for index, (mine, theirs) in enumerate(zip(ours, celerys, strict=True)):
        engine = comparable(mine, from_the_wire=from_the_wire)
        celery = comparable(theirs, from_the_wire=True)
        if from_the_wire and "message_id" not in celery["properties"]:
            # aiormq gives each message an id of its own, to tell which one
            # the broker returned unrouted (the publisher's on_return_raises).
            engine["properties"].pop("message_id", None)
        engine_left, celery_left = engine.pop("expiration_ms"), celery.pop("expiration_ms")
        differences = {
            field: {"engine": engine.get(field), "Celery": celery.get(field)}
            for field in engine.keys() | celery.keys()
            if engine.get(field) != celery.get(field)
        }
        assert not differences, f"message {index} differs: {differences}\n{RELEASE_CHANGED}"
        assert engine_left is not None and celery_left is not None, (
            f"message {index}: expiration {engine_left}, Celery {celery_left}\n{RELEASE_CHANGED}"
        )
        assert abs(engine_left - celery_left) < EXPIRATION_SLACK_MS, (
            f"message {index}: expires in {engine_left} ms, Celery's in {celery_left} ms\n"
            f"{RELEASE_CHANGED}"
        )


@dataclass
class Sent:
    """What one way of sending put on the queue and under the chords' keys."""

    messages: list[Received]
    # Per chord: its size as stored, its TTL, whether its counter is left.
    chords: list[tuple[bytes | None, int, int]]


def chord_keys(redis: BlockingRedis, sizes: list[ChordSize]) -> list[tuple[Any, ...]]:
    return [
        (redis.get(size.size_key), redis.ttl(size.size_key), redis.exists(size.counter_key))
        for size in sizes
    ]


def count_from(redis: BlockingRedis, sizes: list[ChordSize]) -> None:
    """Each chord as if it had been sent and counted before: sent again, it
    counts anew (both ways delete the counter)."""
    for size in sizes:
        redis.delete(size.size_key)
        redis.set(size.counter_key, 7)


def same_frozen(signature: Signature, app: Celery) -> Signature:
    """The signature as it was frozen (ids, options, arguments), bound to another app."""
    return Signature.from_dict(pickle.loads(pickle.dumps(signature)), app=app)


def sent_by_celery(
    signature: Signature, app: Celery, built: Built, queue: str, redis: BlockingRedis
) -> Sent:
    """Celery's own send of the frozen signature, and the chord sizes its
    backend wrote: under the group ids it gave them (Celery 5.4 gives a chord
    sent again from its dict a group id of its own for its size)."""
    sizes = built.outgoing.chord_sizes
    count_from(redis, sizes)
    groups: list[str] = []
    write_size = app.backend.set_chord_size

    def noted(group_id: str, chord_size: int) -> None:
        groups.append(group_id)
        write_size(group_id, chord_size)

    app.backend.set_chord_size = noted
    try:
        same_frozen(signature, app).apply_async()
    finally:
        app.backend.set_chord_size = write_size
    keys = [app.backend.get_key_for_group(group_id, ".s") for group_id in groups]
    chords = [(redis.get(key), redis.ttl(key), 0) for key in keys]
    if keys:
        redis.delete(*keys)
    return Sent(drain(queue, len(built.outgoing.messages)), chords)


async def sent_by_engine(
    publisher: Publisher, built: Built, queue: str, redis: BlockingRedis
) -> Sent:
    sizes = built.outgoing.chord_sizes
    count_from(redis, sizes)
    await publisher.publish(built.outgoing)
    return Sent(drain(queue, len(built.outgoing.messages)), chord_keys(redis, sizes))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.name)
async def test_the_engine_sends_what_celery_itself_publishes(
    shape: Shape,
    celery_itself: Celery,
    publisher: Publisher,
    blocking_redis: BlockingRedis,
    idle_queue: str,
) -> None:
    """Field by field, but for what must differ between two sends (the seconds
    left before the expiry; aiormq's message id): what the capture built,
    what the publisher made of it, and the chord sizes both wrote."""
    builder = create_builder(BROKER_URL, REDIS_URL, SERIALIZER, QUEUE_TYPE)
    signature = shape.make()
    expires = datetime.now(UTC) + timedelta(minutes=5)
    built = build(builder, signature, queue=idle_queue, serializer=SERIALIZER, expires=expires)
    outgoing = built.outgoing
    assert (len(outgoing.messages), len(outgoing.chord_sizes)) == (shape.messages, shape.chords), (
        f"{len(outgoing.messages)} messages and {len(outgoing.chord_sizes)} chord sizes "
        f"captured\n{RELEASE_CHANGED}"
    )
    keys = [key for size in outgoing.chord_sizes for key in (size.size_key, size.counter_key)]
    try:
        by_celery = sent_by_celery(signature, celery_itself, built, idle_queue, blocking_redis)

        # The capture: the messages, the queues to declare, the chord sizes.
        assert_same([captured(message) for message in outgoing.messages], by_celery.messages)
        queue = celery_itself.amqp.queues[idle_queue]
        declared = [(queue.name, queue.durable, queue.auto_delete, queue.queue_arguments)]
        for message in outgoing.messages:
            assert [
                (to.name, to.durable, to.auto_delete, to.queue_arguments) for to in message.declare
            ] == declared, RELEASE_CHANGED
        for size, (stored, ttl, counter) in zip(
            outgoing.chord_sizes, by_celery.chords, strict=True
        ):
            assert (str(size.size).encode(), 0) == (stored, counter), RELEASE_CHANGED
            assert size.expires is not None and size.expires - 5 < ttl <= size.expires, (
                f"chord size kept {ttl} s, captured {size.expires} s\n{RELEASE_CHANGED}"
            )

        # What the publisher makes of it, off the wire.
        by_engine = await sent_by_engine(publisher, built, idle_queue, blocking_redis)
        assert_same(by_engine.messages, by_celery.messages, from_the_wire=True)
        for (size, ttl, counter), (celerys, celerys_ttl, celerys_counter) in zip(
            by_engine.chords, by_celery.chords, strict=True
        ):
            assert (size, counter) == (celerys, celerys_counter), RELEASE_CHANGED
            assert abs(ttl - celerys_ttl) <= 5, RELEASE_CHANGED
    finally:
        if keys:
            blocking_redis.delete(*keys)


def test_the_ids_are_those_of_the_frozen_signature() -> None:
    """The record's ids: the answer's tasks, and every task the worker stores
    (a chain answers with its last link, a chord with its body)."""
    builder = create_builder(BROKER_URL, REDIS_URL, SERIALIZER, QUEUE_TYPE)
    expires = datetime.now(UTC) + timedelta(minutes=1)
    shapes = {shape.name: shape.make() for shape in SHAPES}
    built = {
        name: build(builder, signature, queue="unused", serializer=SERIALIZER, expires=expires)
        for name, signature in shapes.items()
    }
    task, chain, group, chord = (shapes[name] for name in ("task", "chain", "group", "chord"))
    assert (built["task"].task_id, built["task"].answer_ids) == (task.id, [task.id])
    assert not built["task"].is_group
    last, first = chain.tasks[-1], chain.tasks[0]
    assert (built["chain"].task_id, built["chain"].answer_ids) == (last.id, [last.id])
    assert sorted(built["chain"].all_ids) == sorted([first.id, last.id])
    members = [member.id for member in group.tasks]
    assert built["group"].is_group
    assert (built["group"].answer_ids, sorted(built["group"].all_ids)) == (
        members,
        sorted(members),
    )
    # The canvas made the chord's header a group when it froze it.
    header_tasks = chord.tasks.tasks if isinstance(chord.tasks, celery_group) else chord.tasks
    body, header = chord.body, [member.id for member in header_tasks]
    assert (built["chord"].task_id, built["chord"].answer_ids) == (body.id, [body.id])
    assert not built["chord"].is_group
    assert sorted(built["chord"].all_ids) == sorted([*header, body.id])


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.name)
async def test_each_shape_runs_on_the_worker_and_is_waited_for(
    shape: Shape, task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    """The messages are not only Celery's: the render's worker runs them."""
    reply = await task_engine.wait(owner, shape.name, shape.make())
    assert (reply.status, reply.result, reply.error) == ("SUCCESS", shape.result, None)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.name)
async def test_each_shape_runs_on_the_worker_and_is_polled_for(
    shape: Shape, task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    task_id = await task_engine.submit(owner, shape.name, shape.make())
    reply = await until_final(task_engine, owner, task_id)
    assert (reply.task_id, reply.status, reply.result) == (task_id, "SUCCESS", shape.result)
