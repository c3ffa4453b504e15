"""The engine's public calls against the real services and the render's real
worker: waiting, submitting, status, cancelling, listing, following, the
limits per owner, and the services that are away."""

import asyncio
import contextlib
import importlib.util
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from celery import Celery, signature
from celery.canvas import Signature
from kombu import Connection, Queue
from redis.asyncio import Redis

from taskengine import (
    BrokerUnavailableError,
    RedisUnavailableError,
    TaskEndedError,
    TaskEngine,
    TaskFailedError,
    TaskNotFoundError,
    TaskReply,
    TaskTimeoutError,
    TooManyFollowersError,
    TooManyTasksError,
)
from taskengine.celery_messages import create_builder
from taskengine.queues import dead_letter_queue_arguments, task_queue
from taskengine.states import Meta
from testkit import dead_letters_reader, delete_queue
from testkit.faults import FaultProxy, started
from tests.engine.conftest import (
    BROKER_URL,
    QUEUE_TYPE,
    REDIS_URL,
    SERIALIZER,
    OpenEngine,
    with_port,
)
from tests.engine.support import ECHO, SHAPES, echo, stored_row, until_final

# Celery's own key of a task's result in its Redis backend, and its decoding.
RESULT_KEY = "celery-task-meta-{}"
decode_result = create_builder(BROKER_URL, REDIS_URL, SERIALIZER, QUEUE_TYPE).backend.decode_result


async def stored_state(redis: Redis, task_id: uuid.UUID, status: str) -> Meta:
    """What a worker stored for the task, once it says `status`."""
    deadline = time.monotonic() + 10
    while True:
        payload = await redis.get(RESULT_KEY.format(task_id))
        meta: Meta | None = decode_result(payload) if payload else None
        if meta is not None and meta["status"] == status:
            return meta
        assert time.monotonic() < deadline, f"task {task_id} not {status}: {meta}"
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def consumed(celery: Celery, worker: str, queue: str) -> Iterator[None]:
    """The run's worker consumes the queue too, within the block."""
    # Declared as every task queue is (taskengine/queues.py).
    declared = task_queue(queue, QUEUE_TYPE)
    options = {"queue_arguments": declared.queue_arguments}
    celery.control.add_consumer(
        queue,
        exchange_type=declared.exchange.type,
        destination=[worker],
        options=options,
        reply=True,
        timeout=5,
    )
    try:
        yield
    finally:
        celery.control.cancel_consumer(queue, destination=[worker], reply=True, timeout=5)


async def every_reply(engine: TaskEngine, owner: uuid.UUID, task_id: uuid.UUID) -> list[TaskReply]:
    """What follow() yields, to the final reply."""
    async with contextlib.aclosing(engine.follow(owner, task_id)) as replies:
        return [reply async for reply in replies]


async def first_reply(
    engine: TaskEngine, owner: uuid.UUID, task_id: uuid.UUID, at_most: int
) -> TaskReply:
    """The first reply follow() yields; the follower is let go of after it."""
    async with contextlib.aclosing(engine.follow(owner, task_id, at_most=at_most)) as replies:
        return await anext(replies)


# wait()


async def test_wait_returns_the_result_and_the_record_keeps_it(
    task_engine: TaskEngine, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    reply = await task_engine.wait(owner, "echo", echo("kept"))
    assert (reply.status, reply.result, reply.error) == ("SUCCESS", "kept", None)
    stored = await stored_row(db, reply.task_id)
    assert (stored["owner_id"], stored["name"], stored["status"], stored["result"]) == (
        owner,
        "echo",
        "SUCCESS",
        '"kept"',
    )
    # Kept where it is read from now on, whatever Redis forgets.
    assert await task_engine.status(owner, reply.task_id) == reply


async def test_a_task_with_a_countdown_runs_once_it_is_due(
    task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    """Under quorum queues RabbitMQ delays it (Celery's native delayed delivery,
    through the exchanges the workers declare); under classic ones the worker
    keeps it until it is due."""
    sent_at = time.monotonic()
    reply = await task_engine.wait(owner, "echo", echo("later").set(countdown=2))
    assert (reply.status, reply.result) == ("SUCCESS", "later")
    assert time.monotonic() - sent_at >= 2


@pytest.mark.skipif(QUEUE_TYPE != "quorum", reason="a classic queue's worker keeps the task")
async def test_a_delayed_task_reaches_a_queue_no_worker_declared_yet(
    engine_with: OpenEngine, idle_queue: str, owner: uuid.UUID
) -> None:
    """RabbitMQ keeps it until it is due, then hands it to its queue through
    the bindings the engine made, where no worker bound the queue yet."""
    async with engine_with(queue=idle_queue) as engine:
        await engine.submit(owner, "echo", echo("later").set(countdown=1))
    deadline = time.monotonic() + 10
    with Connection(BROKER_URL) as connection:
        while connection.default_channel.queue_declare(idle_queue, passive=True)[1] == 0:
            assert time.monotonic() < deadline, "the delayed task never reached its queue"
            await asyncio.sleep(0.1)


FAILING: dict[str, tuple[Callable[[], Signature], str, str]] = {
    "missing-argument": (lambda: echo(), "TypeError", "text"),
    "extra-argument": (lambda: echo("a", "b"), "TypeError", "positional argument"),
    "unknown-task": (
        lambda: signature(ECHO.replace(".echo", ".no-such-task"), args=("x",)),
        "NotRegistered",
        "no-such-task",
    ),
}


@pytest.mark.parametrize("failing", FAILING)
async def test_a_failing_task_raises_task_failed_with_its_type_and_message(
    task_engine: TaskEngine, db: asyncpg.Connection, owner: uuid.UUID, failing: str
) -> None:
    """Bad arguments and a task no worker knows: the worker stores the failure,
    and the service answers with its type and message (never a traceback)."""
    make, error_type, in_message = FAILING[failing]
    with pytest.raises(TaskFailedError) as failed:
        await task_engine.wait(owner, "failing", make())
    reply = failed.value.reply
    assert reply.status == "FAILURE" and reply.error is not None
    assert reply.error.type == error_type
    assert in_message in reply.error.message
    stored = await stored_row(db, reply.task_id)
    assert (stored["status"], stored["error_type"], stored["error_message"]) == (
        "FAILURE",
        error_type,
        reply.error.message,
    )


async def test_a_wait_past_its_timeout_raises_and_the_task_is_revoked(
    engine_with: OpenEngine, idle_queue: str, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """Nobody consumes its queue. A wait that gave up cancels the task, so that
    no worker runs it for a client that is gone."""
    async with engine_with(queue=idle_queue, wait_timeout=0.5) as engine:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError) as timed_out:
            await engine.wait(owner, "echo", echo("never"))
        assert 0.5 <= time.monotonic() - started < 3
        task_id = timed_out.value.task_id
        assert (await stored_row(db, task_id))["status"] == "REVOKED"
        assert (await engine.status(owner, task_id)).status == "REVOKED"


@pytest.mark.parametrize("shape", ["task", "chain", "chord"])
async def test_a_waited_task_cancelled_meanwhile_fails_once_a_worker_drops_it(
    engine_with: OpenEngine,
    idle_queue: str,
    celery: Celery,
    worker: str,
    owner: uuid.UUID,
    shape: str,
) -> None:
    """Another request cancels it while it waits in the queue: the worker that
    takes it drops it, and the wait ends then with the cancelling, not at its
    timeout."""
    [make] = [each.make for each in SHAPES if each.name == shape]
    async with engine_with(queue=idle_queue, wait_timeout=8.0) as engine:
        waiting = asyncio.create_task(engine.wait(owner, shape, make()))
        deadline = time.monotonic() + 5
        while not (await engine.tasks(owner, 0, 1))[0]:
            assert time.monotonic() < deadline, "never recorded"
            await asyncio.sleep(0.02)
        [task] = (await engine.tasks(owner, 0, 1))[1]
        assert (await engine.cancel(owner, task.task_id)).status == "REVOKED"
        started = time.monotonic()
        with consumed(celery, worker, idle_queue), pytest.raises(TaskFailedError) as failed:
            await waiting
        assert failed.value.reply.status == "REVOKED"
        assert time.monotonic() - started < 4


# submit() and status()


async def test_a_submitted_task_is_pending_then_its_status_ends_with_the_result(
    task_engine: TaskEngine, db: asyncpg.Connection, redis: Redis, owner: uuid.UUID
) -> None:
    task_id = await task_engine.submit(owner, "echo", echo("later"))
    stored = await stored_row(db, task_id)
    assert (stored["owner_id"], stored["status"]) == (owner, "PENDING")
    reply = await until_final(task_engine, owner, task_id)
    assert (reply.status, reply.result) == ("SUCCESS", "later")
    assert (await stored_row(db, task_id))["status"] == "SUCCESS"
    # Once kept in its record, Redis forgets it (in the background).
    deadline = time.monotonic() + 2
    while await redis.exists(RESULT_KEY.format(task_id)):
        assert time.monotonic() < deadline, "the result stayed in Redis"
        await asyncio.sleep(0.05)
    assert await task_engine.status(owner, task_id) == reply


async def test_another_owners_task_is_not_found(task_engine: TaskEngine, owner: uuid.UUID) -> None:
    """Another owner's task is answered as if it did not exist: ids are not secrets."""
    task_id = await task_engine.submit(owner, "echo", echo("mine"))
    stranger = uuid.uuid4()
    with pytest.raises(TaskNotFoundError):
        await task_engine.status(stranger, task_id)
    with pytest.raises(TaskNotFoundError):
        await task_engine.cancel(stranger, task_id)
    with pytest.raises(TaskNotFoundError):
        await task_engine.status(owner, uuid.uuid4())
    assert (await until_final(task_engine, owner, task_id)).status == "SUCCESS"


async def test_a_task_nobody_runs_is_lost_after_its_expiry_and_lost_after(
    engine_with: OpenEngine, idle_queue: str, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """Past its deadline no worker will ever tell how it ended: LOST, not
    PENDING forever."""
    async with engine_with(queue=idle_queue, expires=0.4, lost_after=0.4) as engine:
        task_id = await engine.submit(owner, "echo", echo("nobody"))
        assert (await engine.status(owner, task_id)).status == "PENDING"
        await asyncio.sleep(1.0)
        assert (await engine.status(owner, task_id)).status == "LOST"
        assert (await stored_row(db, task_id))["status"] == "LOST"


async def test_a_task_that_expires_in_its_queue_ends_revoked_within_seconds(
    engine_with: OpenEngine, idle_queue: str, celery: Celery, owner: uuid.UUID
) -> None:
    """RabbitMQ dead-letters it; a worker of that queue, busy on another one
    here, stores why it ended: its record is final long before LOST."""
    environment = {"CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND_URL": REDIS_URL}
    with dead_letters_reader(celery, idle_queue, **environment):
        async with engine_with(queue=idle_queue, expires=1.0) as engine:
            task_id = await engine.submit(owner, "echo", echo("too late"))
            expiry = time.monotonic() + 1.0
            reply = await until_final(engine, owner, task_id, seconds=12)
            ended_after = time.monotonic() - expiry
    assert reply.status == "REVOKED"
    assert reply.error is not None
    assert reply.error.message == "expired in the queue before a worker took it"
    assert ended_after < 10


def test_the_api_and_the_workers_declare_each_queue_alike() -> None:
    """The worker's rule is its own (the API never imports the worker): read
    from its file, it declares every queue as the API does, of either type."""
    path = Path(__file__).resolve().parents[3] / "worker" / "worker" / "queues.py"
    spec = importlib.util.spec_from_file_location("worker_queues", path)
    assert spec and spec.loader
    worker_rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker_rule)
    for queue_type in ("classic", "quorum"):
        builder = create_builder(BROKER_URL, REDIS_URL, SERIALIZER, queue_type)
        for name in ("tasks", "tasks-long", "test.tasks.a1b2"):
            expected = declared(task_queue(name, queue_type))
            assert declared(worker_rule.task_queue(name, queue_type)) == expected
            assert declared(builder.amqp.queues[name]) == expected
        assert worker_rule.dead_letter_queue_arguments(queue_type) == dead_letter_queue_arguments(
            queue_type
        )
    assert declared(task_queue("tasks", "quorum")) != declared(task_queue("tasks", "classic"))


def declared(queue: Queue) -> tuple[object, ...]:
    """What RabbitMQ compares when a queue or its exchange is declared again."""
    exchange = queue.exchange
    return (queue.name, queue.durable, queue.queue_arguments, exchange.name, exchange.type)


async def test_a_queue_declared_with_other_arguments_refuses_every_publish(
    engine_with: OpenEngine, idle_queue: str, owner: uuid.UUID
) -> None:
    """As a queue left by a release without dead letters: RabbitMQ closes the
    channel at the declaration, and the engine says the broker is unavailable."""
    with Connection(BROKER_URL) as connection:
        connection.default_channel.queue_declare(idle_queue, durable=True)
    async with engine_with(queue=idle_queue) as engine:
        with pytest.raises(BrokerUnavailableError):
            await engine.submit(owner, "echo", echo("refused"))


# cancel()


async def test_cancelling_a_finished_task_raises_task_ended(
    task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    """Its end stays the one kept; the error carries it."""
    done = await task_engine.wait(owner, "echo", echo("done"))
    with pytest.raises(TaskEndedError) as ended:
        await task_engine.cancel(owner, done.task_id)
    assert ended.value.reply == done


async def test_a_task_cancelled_in_the_queue_is_revoked_at_once_and_never_runs(
    engine_with: OpenEngine,
    idle_queue: str,
    celery: Celery,
    worker: str,
    db: asyncpg.Connection,
    redis: Redis,
    owner: uuid.UUID,
) -> None:
    """Nobody will publish the end of a task that never starts: the cancelling
    itself is the answer."""
    async with engine_with(queue=idle_queue) as engine:
        task_id = await engine.submit(owner, "echo", echo("cancelled"))
        reply = await engine.cancel(owner, task_id)
        assert (reply.task_id, reply.status) == (task_id, "REVOKED")
        stored = await stored_row(db, task_id)
        assert stored["status"] == "REVOKED" and stored["cancelled_at"] is not None
        # A worker that takes it from the queue now drops it.
        with consumed(celery, worker, idle_queue):
            dropped = await stored_state(redis, task_id, "REVOKED")
        await redis.delete(RESULT_KEY.format(task_id))
        assert type(dropped["result"]).__name__ == "TaskRevokedError"
        assert (await engine.status(owner, task_id)).status == "REVOKED"


# The limits per owner


async def test_tasks_in_flight_are_limited_per_owner(
    engine_with: OpenEngine, idle_queue: str, owner: uuid.UUID
) -> None:
    """One owner cannot fill the queue: tasks sent and not seen end count."""
    async with engine_with(queue=idle_queue, tasks_in_flight=2) as engine:
        await engine.submit(owner, "echo", echo(1))
        await engine.submit(owner, "echo", echo(2))
        with pytest.raises(TooManyTasksError) as refused:
            await engine.submit(owner, "echo", echo(3))
        assert refused.value.limit == 2
        with pytest.raises(TooManyTasksError):
            await engine.wait(owner, "echo", echo(3))
        # Another owner counts apart.
        await engine.submit(uuid.uuid4(), "echo", echo(1))
        # A cancelled task is no longer in flight.
        _, [newest] = await engine.tasks(owner, 0, 1)
        await engine.cancel(owner, newest.task_id)
        await engine.submit(owner, "echo", echo(3))


async def test_concurrent_submits_never_exceed_the_limit(
    engine_with: OpenEngine, idle_queue: str, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """A task admitted whose record is still being written is in flight too."""
    async with engine_with(queue=idle_queue, tasks_in_flight=2) as engine:
        outcomes = await asyncio.gather(
            *(engine.submit(owner, "echo", echo(n)) for n in range(6)), return_exceptions=True
        )
        sent = [outcome for outcome in outcomes if isinstance(outcome, uuid.UUID)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, TooManyTasksError)]
        assert (len(sent), len(refused)) == (2, 4), outcomes
        recorded = await db.fetchval("SELECT count(*) FROM task_records WHERE owner_id = $1", owner)
        assert recorded == 2


async def test_a_task_that_ended_unread_leaves_the_count(
    engine_with: OpenEngine, db: asyncpg.Connection, redis: Redis, owner: uuid.UUID
) -> None:
    """A client that never asks for its results does not stay locked out: a
    task whose result is stored is counted out when the limit is reached."""
    async with engine_with(tasks_in_flight=1) as engine:
        unread = await engine.submit(owner, "echo", echo("unread"))
        await stored_state(redis, unread, "SUCCESS")
        assert (await stored_row(db, unread))["status"] == "PENDING"  # nobody asked
        second = await engine.submit(owner, "echo", echo("second"))
        assert (await until_final(engine, owner, second)).result == "second"
        # Waited tasks end read: one after another, they never count against each other.
        for text in ("one", "after", "another"):
            assert (await engine.wait(owner, "echo", echo(text))).result == text
        assert (await until_final(engine, owner, unread)).result == "unread"


# tasks()


async def test_tasks_are_listed_newest_first_one_page_at_a_time(
    engine_with: OpenEngine, idle_queue: str, owner: uuid.UUID
) -> None:
    """Each owner sees its own tasks only."""
    async with engine_with(queue=idle_queue) as engine:
        for name in ("first", "second", "third"):
            await engine.submit(owner, name, echo(name))
        await engine.submit(uuid.uuid4(), "another's", echo("x"))
        total, page = await engine.tasks(owner, 0, 2)
        assert (total, [task.name for task in page]) == (3, ["third", "second"])
        total, page = await engine.tasks(owner, 2, 2)
        assert (total, [task.name for task in page]) == (3, ["first"])
        assert [task.status for task in page] == ["PENDING"]
        assert await engine.tasks(uuid.uuid4(), 0, 10) == (0, [])


# follow()


async def test_follow_yields_each_state_until_the_final_one_kept_in_the_record(
    engine_with: OpenEngine,
    idle_queue: str,
    celery: Celery,
    worker: str,
    db: asyncpg.Connection,
    owner: uuid.UUID,
) -> None:
    """The task waits in a queue nobody consumes until it is followed, so that
    every state it goes through is seen."""
    async with engine_with(queue=idle_queue) as engine:
        task_id = await engine.submit(owner, "echo", echo("followed"))
        replies = []
        async with contextlib.aclosing(engine.follow(owner, task_id)) as followed:
            replies.append(await anext(followed))
            # Queued until now: the worker takes it once it is followed.
            with consumed(celery, worker, idle_queue):
                replies.extend([reply async for reply in followed])
        assert [reply.status for reply in replies] == ["PENDING", "STARTED", "SUCCESS"]
        assert replies[-1].result == "followed"
        stored = await stored_row(db, task_id)
        assert (stored["status"], stored["result"]) == ("SUCCESS", '"followed"')


async def test_following_an_ended_task_yields_its_end_alone(
    task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    done = await task_engine.wait(owner, "echo", echo("over"))
    assert await every_reply(task_engine, owner, done.task_id) == [done]


async def test_following_another_owners_task_is_not_found(
    task_engine: TaskEngine, owner: uuid.UUID
) -> None:
    task_id = await task_engine.submit(owner, "echo", echo("mine"))
    with pytest.raises(TaskNotFoundError):
        await every_reply(task_engine, uuid.uuid4(), task_id)
    await until_final(task_engine, owner, task_id)


async def subscribers(redis: Redis, task_id: uuid.UUID) -> int:
    """Connections subscribed to the channel of the task's results."""
    [(_, count)] = await redis.pubsub_numsub(RESULT_KEY.format(task_id))
    return int(count)


async def test_followers_are_limited_per_owner_and_let_go_when_closed_early(
    engine_with: OpenEngine, idle_queue: str, redis: Redis, owner: uuid.UUID
) -> None:
    """A follower holds a Redis subscription and a slot counted across
    processes: one that leaves gives both back."""
    async with engine_with(queue=idle_queue) as engine:
        first, second = [await engine.submit(owner, "echo", echo(n)) for n in (1, 2)]
        async with contextlib.AsyncExitStack() as stack:
            followers = [
                await stack.enter_async_context(
                    contextlib.aclosing(engine.follow(owner, task_id, at_most=2))
                )
                for task_id in (first, second)
            ]
            for follower in followers:
                assert (await anext(follower)).status == "PENDING"
            assert await subscribers(redis, first) == 1
            with pytest.raises(TooManyFollowersError) as refused:
                await anext(engine.follow(owner, first, at_most=2))
            assert refused.value.limit == 2
            # Another owner counts apart.
            other = uuid.uuid4()
            mine = await engine.submit(other, "echo", echo(3))
            assert (await first_reply(engine, other, mine, at_most=2)).status == "PENDING"

            await followers[0].aclose()
            # Its slot and its subscription are given back (in the background).
            deadline = time.monotonic() + 2
            while await subscribers(redis, first):
                assert time.monotonic() < deadline, "still subscribed"
                await asyncio.sleep(0.05)
            assert (await first_reply(engine, owner, first, at_most=2)).status == "PENDING"


# Services away


@pytest.mark.parametrize("call", ["submit", "wait"])
async def test_a_dead_broker_is_unavailable_within_the_publish_timeout_and_revoked(
    engine_with: OpenEngine, db: asyncpg.Connection, owner: uuid.UUID, dead_port: int, call: str
) -> None:
    """A broker that refuses connections, or one that never answers: the request
    fails within the timeout, and the task recorded for it is revoked (part of
    a workflow may have gone out)."""
    dead = with_port(BROKER_URL, dead_port)
    async with engine_with(broker_url=dead, publish_timeout=1.0) as engine:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError):
            await getattr(engine, call)(owner, "echo", echo("unsent"))
        assert time.monotonic() - started < 1.0 + 1.5
        total, [task] = await engine.tasks(owner, 0, 10)
        assert (total, task.status) == (1, "REVOKED")
        assert (await stored_row(db, task.task_id))["cancelled_at"] is not None


async def test_a_cluster_with_a_dead_node_is_served_by_the_others(
    engine_with: OpenEngine,
    worker: str,
    owner: uuid.UUID,
    dead_port: int,
    request: pytest.FixtureRequest,
) -> None:
    """The dead node listed first: a node that refuses costs nothing, a silent
    one the publish that tried it; the next publishes go to a node that answers."""
    cluster = f"{with_port(BROKER_URL, dead_port)};{BROKER_URL}"
    async with engine_with(broker_url=cluster, publish_timeout=1.0) as engine:
        replies = []
        for number in range(3):
            try:
                replies.append(await engine.wait(owner, "echo", echo(f"served {number}")))
            except BrokerUnavailableError:
                replies.append(None)
    served = [reply.result if reply is not None else None for reply in replies]
    assert served[1:] == ["served 1", "served 2"]
    if request.node.callspec.params["dead_port"] == "closed":
        assert served[0] == "served 0"


async def test_a_node_lost_without_a_word_is_left_for_the_next(
    engine_with: OpenEngine, worker: str, owner: uuid.UUID
) -> None:
    """The engine's node goes silent, as a lost machine does (no reset, no
    close): the publish that meets the silence fails within its timeout, and
    the next ones go to the next node, without waiting for heartbeats."""
    parsed = urlsplit(BROKER_URL)
    with started(FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 5672)) as node:
        cluster = f"{with_port(BROKER_URL, node.port)};{BROKER_URL}"
        async with engine_with(broker_url=cluster, publish_timeout=1.0) as engine:
            first = await engine.wait(owner, "echo", echo("through the first node"))
            node.silent()
            started_at = time.monotonic()
            with pytest.raises(BrokerUnavailableError):
                await engine.wait(owner, "echo", echo("into the silence"))
            assert time.monotonic() - started_at < 1.0 + 0.5
            after = [await engine.wait(owner, "echo", echo(f"after {n}")) for n in range(3)]
            node.up()
    assert first.result == "through the first node"
    assert [reply.result for reply in after] == ["after 0", "after 1", "after 2"]


async def test_a_dead_redis_is_unavailable_without_blocking(
    task_engine: TaskEngine, engine_with: OpenEngine, closed_port: int, owner: uuid.UUID
) -> None:
    """Redis holds the counts, results and revocations: without it nothing is
    sent, and nobody waits for a timeout to hear so."""
    sent = await task_engine.submit(owner, "echo", echo("sent"))
    async with engine_with(
        redis_url=with_port(REDIS_URL, closed_port), redis_timeout=3.0
    ) as engine:
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError):
            await engine.wait(owner, "echo", echo("x"))
        with pytest.raises(RedisUnavailableError):
            await engine.submit(owner, "echo", echo("x"))
        with pytest.raises(RedisUnavailableError):
            await engine.status(owner, sent)
        with pytest.raises(RedisUnavailableError):
            await every_reply(engine, owner, sent)
        # Refused at once: nobody waited for the timeout.
        assert time.monotonic() - started < 3.0
        # Refused before anything was recorded: only the task sent before.
        assert (await engine.tasks(owner, 0, 10))[0] == 1
    assert (await until_final(task_engine, owner, sent)).result == "sent"


async def test_a_queue_deleted_since_it_was_declared_is_declared_again(
    engine_with: OpenEngine, idle_queue: str, celery: Celery, owner: uuid.UUID
) -> None:
    """The publisher declares each queue once per process. A message to a
    queue deleted since comes back unrouted: that task is refused (and
    revoked), and the queue is declared again for the next ones, over the
    same connection (a refusal of one message says nothing of the node)."""
    parsed = urlsplit(BROKER_URL)
    with started(FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 5672)) as node:
        # Through the proxy first: a connection opened again would go to the other.
        cluster = f"{with_port(BROKER_URL, node.port)};{BROKER_URL}"
        async with engine_with(broker_url=cluster, queue=idle_queue) as engine:
            await engine.submit(owner, "echo", echo("declared"))
            delete_queue(celery, idle_queue)
            with pytest.raises(BrokerUnavailableError):
                await engine.submit(owner, "echo", echo("unrouted"))
            _, [unrouted] = await engine.tasks(owner, 0, 1)
            assert (unrouted.name, unrouted.status) == ("echo", "REVOKED")
            through_the_proxy = node.sent_to_server
            sent = [await engine.submit(owner, "echo", echo(text)) for text in ("sent", "again")]
            assert node.sent_to_server > through_the_proxy
            statuses = [(await engine.status(owner, task_id)).status for task_id in sent]
            assert statuses == ["PENDING", "PENDING"]
    with Connection(BROKER_URL) as connection:
        _, waiting, _ = connection.default_channel.queue_declare(idle_queue, passive=True)
    assert waiting == 2
