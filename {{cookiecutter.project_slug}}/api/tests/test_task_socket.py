"""WS /api/v1/ws/tasks/{task_id} over real sockets, served by uvicorn, with a
real worker, broker and result backend: the echo task that every render has,
and workflows and failures made of it."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from celery import Celery, chain, states
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.v1.sockets.config import SocketSettings
from app.api.v1.sockets.task_socket import CloseCode
from app.core.config import Settings
from app.main import create_app
from app.models import User
from taskengine import TaskEngine
from testkit import dead_letters_reader, subscriptions
from testkit.faults import FaultProxy, started
from tests.conftest import MakeUser, listening
from tests.sockets import (
    SOCKET_SETTINGS,
    assert_in_order,
    assert_members_reported,
    follow,
    follow_to_the_end,
    follows_nothing,
    open_following,
    read_all,
    small_socket_limits,
    socket_url,
    statuses,
    token_message,
)
from tests.tasks import (
    ECHO_WORKFLOWS,
    TASKS,
    WRONG_ARGUMENTS,
    echo,
    echo_workflow,
    eventually,
    forgotten,
    status_of,
    submitted,
    unserved_app,
    unserved_queue,
    wait_for_state,
)

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module", autouse=True)
def socket_settings(app: FastAPI) -> Iterator[SocketSettings]:
    with small_socket_limits(app) as settings:
        yield settings


async def start_echo(client: AsyncClient, headers: dict[str, str], text: str) -> str:
    return await submitted(client, headers, f"{TASKS}/echo", {"text": text})


async def test_echo_sends_each_state_in_order_then_its_result(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    task_id = await start_echo(client, headers, "hello")
    messages = await follow_to_the_end(server, task_id, token_message(user, settings))
    assert_in_order(messages, ["PENDING", "STARTED", "SUCCESS"])
    assert messages[-1] == {
        "task_id": task_id,
        "status": "SUCCESS",
        "result": "hello",
        "error": None,
    }
    # The socket kept the result with the task's record.
    assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).json() == messages[-1]


async def test_failing_task_ends_with_its_error(
    server: str, task_engine: TaskEngine, user: User, settings: Settings
) -> None:
    task_id = await task_engine.submit(user.id, "failing-echo", echo("one", "two"))
    messages = await follow_to_the_end(server, task_id, token_message(user, settings))
    assert messages[-1]["status"] == "FAILURE"
    assert messages[-1]["error"] == WRONG_ARGUMENTS


@pytest.mark.parametrize("workflow", ECHO_WORKFLOWS)
async def test_workflow_reports_members_finished_then_the_waited_result(
    server: str,
    task_engine: TaskEngine,
    user: User,
    settings: Settings,
    workflow: str,
) -> None:
    result, total = ECHO_WORKFLOWS[workflow]
    task_id = await task_engine.submit(user.id, workflow, echo_workflow(workflow, "hi"))
    messages = await follow_to_the_end(server, task_id, token_message(user, settings))
    assert_members_reported(messages, total)
    waited = await task_engine.wait(user.id, workflow, echo_workflow(workflow, "hi"))
    assert waited.result == result
    assert (messages[-1]["status"], messages[-1]["result"]) == ("SUCCESS", result)


async def test_a_finished_task_gets_its_final_state_at_once(
    server: str, client: AsyncClient, celery: Celery, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    waited = await client.post(f"{TASKS}/echo", json={"text": "waited"}, headers=headers)
    assert waited.status_code == 200
    messages, code, _ = await follow(
        server, waited.json()["task_id"], token_message(user, settings)
    )
    assert (messages, code) == ([waited.json()], CloseCode.FINISHED)

    # Finished in the worker, never read since: the result is still in Redis only.
    task_id = await start_echo(client, headers, "unread")
    await wait_for_state(celery, task_id, states.SUCCESS)
    messages, code, _ = await follow(server, task_id, token_message(user, settings))
    assert statuses(messages) == ["SUCCESS"]
    assert messages[0]["result"] == "unread"


async def test_a_task_that_expires_in_its_queue_ends_revoked_on_the_socket(
    celery: Celery, user: User, settings: Settings
) -> None:
    """RabbitMQ dead-letters it, and the worker reading the dead letters
    stores why it ended: its follower hears that end within seconds."""
    with unserved_queue(celery) as queue, dead_letters_reader(celery, queue):
        changes = {"CELERY_TASK_QUEUE": queue, "TASK_EXPIRES": 1.0}
        app = create_app(settings.model_copy(update=changes))
        async with app.router.lifespan_context(app), listening(app) as address:
            task_id = await app.state.task_engine.submit(user.id, "echo", echo("too late"))
            began = time.monotonic()
            messages = await follow_to_the_end(address, task_id, token_message(user, settings))
            ended_after = time.monotonic() - began
    assert statuses(messages) == ["PENDING", "REVOKED"]
    assert messages[-1]["error"]["message"] == "expired in the queue before a worker took it"
    assert ended_after < 1.0 + 10


def signed(claims: dict[str, Any], key: str, settings: Settings) -> str:
    return jwt.encode(claims, key, algorithm=settings.JWT_ALGORITHM)


@pytest.mark.parametrize(
    "case",
    ["nothing", "not json", "no token", "garbage token", "expired", "forged", "deleted account"],
)
async def test_no_valid_token_closes_with_4401(
    server: str,
    client: AsyncClient,
    make_user: MakeUser,
    auth_headers,
    settings: Settings,
    app: FastAPI,
    case: str,
) -> None:
    user = await make_user()
    task_id = await start_echo(client, auth_headers(user), "x")
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "type": "access",
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    key = settings.SECRET_KEY.get_secret_value()
    first = {
        "not json": "token please",
        "no token": json.dumps({"bearer": "x"}),
        "garbage token": json.dumps({"token": "a.b.c"}),
        "expired": json.dumps(
            {"token": signed({**claims, "exp": now - timedelta(seconds=1)}, key, settings)}
        ),
        "forged": json.dumps({"token": signed(claims, "not the key" * 4, settings)}),
        "deleted account": json.dumps({"token": signed(claims, key, settings)}),
    }
    if case == "deleted account":
        async with app.state.sessionmaker() as session:
            await session.delete(await session.get(User, user.id))
            await session.commit()
        # Other processes notice within ACCOUNT_CACHE_SECONDS; this one is told
        # at once, as after a change through the API.
        app.state.account_cache.forget(user.id)
    async with connect(socket_url(server, task_id)) as socket:
        if case != "nothing":
            await socket.send(first[case])
        began = time.monotonic()
        assert await read_all(socket) == []
    assert socket.close_code == CloseCode.UNAUTHENTICATED
    if case == "nothing":
        assert 0.4 < time.monotonic() - began < 3  # WS_AUTH_TIMEOUT is 0.5 s here


async def test_inactive_user_closes_with_4403(
    server: str, client: AsyncClient, make_user: MakeUser, auth_headers, settings: Settings
) -> None:
    user = await make_user()
    task_id = await start_echo(client, auth_headers(user), "x")
    inactive = await make_user(is_active=False)
    messages, code, _ = await follow(server, task_id, token_message(inactive, settings))
    assert (messages, code) == ([], CloseCode.INACTIVE_USER)


@asynccontextmanager
async def behind_a_proxy(settings: Settings) -> AsyncIterator[tuple[FaultProxy, str]]:
    """The API as another process of it, reaching PostgreSQL through a proxy
    of the test's own, served on a real port; yields the proxy and the
    address. Accounts are kept for a minute: once read, a socket's
    authentication costs no query."""
    database = make_url(settings.POSTGRES_DATABASE_URL)
    with started(FaultProxy(database.host or "127.0.0.1", database.port or 5432)) as proxy:
        through = database.set(host="127.0.0.1", port=proxy.port)
        changes = {
            "POSTGRES_DATABASE_URL": through.render_as_string(hide_password=False),
            "ACCOUNT_CACHE_SECONDS": 60,
        }
        app = create_app(settings.model_copy(update=changes))
        with small_socket_limits(app):
            async with app.router.lifespan_context(app), listening(app) as address:
                yield proxy, address


async def refusal_requests(proxy: FaultProxy, server: str, task_id: object, message: str) -> int:
    """Refused with 4404; how many requests the API sent PostgreSQL for it."""
    before = proxy.sent_to_server
    messages, code, _ = await follow(server, task_id, message)
    assert (messages, code) == ([], CloseCode.TASK_NOT_FOUND)
    return proxy.sent_to_server - before


async def test_another_users_task_is_refused_like_an_unknown_one(
    server: str, client: AsyncClient, make_user: MakeUser, auth_headers, settings: Settings
) -> None:
    owner, other = await make_user(), await make_user()
    task_id = await start_echo(client, auth_headers(owner), "mine")
    token = token_message(other, settings)
    async with behind_a_proxy(settings) as (proxy, proxied):
        # The first refusal also reads the account, which the next ones find kept.
        await refusal_requests(proxy, proxied, uuid.uuid4(), token)
        # The same code after the same work (one query either way), so the same time.
        theirs = await refusal_requests(proxy, proxied, task_id, token)
        unknown = await refusal_requests(proxy, proxied, uuid.uuid4(), token)
        assert theirs == unknown > 0
        await refusal_requests(proxy, proxied, "not-a-task-id", token)
    messages, _, _ = await follow(server, task_id, token_message(owner, settings))
    assert messages[-1]["result"] == "mine"


async def test_a_final_state_kept_by_another_reader_first_is_not_missed(
    client: AsyncClient, celery: Celery, user: User, auth_headers, settings: Settings
) -> None:
    """Between the socket's read of the record (PENDING) and its read of
    Redis, another reader keeps the final state in the record and has Redis
    forget it: the socket finds it in the record."""
    headers = auth_headers(user)
    task_id = await start_echo(client, headers, "kept")
    await wait_for_state(celery, task_id, states.SUCCESS)  # the record still says PENDING
    token = token_message(user, settings)
    async with behind_a_proxy(settings) as (proxy, proxied):
        await refusal_requests(proxy, proxied, uuid.uuid4(), token)  # the account kept
        # PostgreSQL gets the socket's query at once; its answer waits.
        proxy.slow()
        before = proxy.sent_to_server
        async with connect(socket_url(proxied, task_id)) as socket:
            await socket.send(token)

            async def record_read() -> bool:
                return proxy.sent_to_server > before

            await eventually(record_read, 5)
            # Meanwhile another reader (here, another process) keeps the end.
            kept = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
            assert kept["status"] == "SUCCESS"
            assert await forgotten(celery, task_id)
            proxy.up()
            messages = await read_all(socket)
    # Found in the record at once: not PENDING first, then the end found by the
    # socket's recheck of a quiet task.
    assert (messages, socket.close_code) == ([kept], CloseCode.FINISHED)


async def open_once_free(
    server: str, task_id: object, message: str, seconds: float
) -> ClientConnection:
    """A socket that follows the task, once a slot is free within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await open_following(server, task_id, message)
        except ConnectionClosed as closed:
            refused = closed.rcvd is not None and closed.rcvd.code == CloseCode.TOO_MANY_SOCKETS
            if not refused or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def test_sockets_per_user_are_limited(
    server: str,
    task_engine: TaskEngine,
    celery: Celery,
    make_user: MakeUser,
    settings: Settings,
) -> None:
    user, other = await make_user(), await make_user()
    message = token_message(user, settings)
    with unserved_queue(celery) as queue:
        # Never run: it outlasts the test, however busy the machine.
        task_id = await task_engine.submit(user.id, "echo", echo("x", queue=queue))
        sockets = [
            await open_following(server, task_id, message)
            for _ in range(SOCKET_SETTINGS.WS_SOCKETS_PER_USER)
        ]
        try:
            messages, code, _ = await follow(server, task_id, message)
            assert (messages, code) == ([], CloseCode.TOO_MANY_SOCKETS)
            # Another user's sockets are counted apart.
            theirs = await task_engine.submit(other.id, "echo", echo("theirs"))
            await follow_to_the_end(server, theirs, token_message(other, settings))
            # A closed socket frees its slot (in the background: soon).
            await sockets.pop().close()
            sockets.append(await open_once_free(server, task_id, message, seconds=2))
        finally:
            for socket in sockets:
                await socket.close()
            await task_engine.cancel(user.id, task_id)

    async def every_slot_free() -> bool:
        return await follows_nothing(task_engine, user.id)

    await eventually(every_slot_free, 2)


async def test_a_client_that_leaves_mid_task_leaves_nothing_behind(
    server: str, task_engine: TaskEngine, celery: Celery, user: User, settings: Settings
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]
    with unserved_queue(celery) as queue:
        # Never run: nothing is published, so only the client's leaving can
        # end the server's side of the sockets.
        first, middle, last, alone = ids
        links = chain(
            echo("x", queue=queue, task_id=first),
            echo(queue=queue, task_id=middle),
            echo(queue=queue, task_id=last),
        )
        workflow = await task_engine.submit(user.id, "echo-chain", links)
        single = await task_engine.submit(user.id, "echo", echo("x", queue=queue, task_id=alone))
        sockets = [
            await open_following(server, task, token_message(user, settings))
            for task in (workflow, single)
        ]
        # The API listens to every task's channel, once.
        assert subscriptions(celery, ids) == len(ids)
        for socket in sockets:
            await socket.close()

        async def nothing_left() -> bool:
            return subscriptions(celery, ids) == 0 and await follows_nothing(task_engine, user.id)

        await eventually(nothing_left, 1.5)
        for task in (workflow, single):
            await task_engine.cancel(user.id, task)


async def test_a_peer_that_stops_answering_pings_is_dropped(
    app: FastAPI, task_engine: TaskEngine, celery: Celery, user: User, settings: Settings
) -> None:
    with unserved_queue(celery) as queue:
        # Never run: nothing is sent after its first state, so only the
        # heartbeat finds the peer gone.
        task_id = await task_engine.submit(user.id, "echo", echo("x", queue=queue))
        async with listening(app, ws_ping_interval=0.3, ws_ping_timeout=0.3) as impatient:
            socket = await open_following(impatient, task_id, token_message(user, settings))
            # A peer that is gone: it never reads, so it never answers a ping.
            socket.transport.pause_reading()

            async def dropped() -> bool:
                return subscriptions(celery, [str(task_id)]) == 0 and await follows_nothing(
                    task_engine, user.id
                )

            try:
                await eventually(dropped, 2)
            finally:
                socket.transport.abort()
        await task_engine.cancel(user.id, task_id)


async def test_an_unreachable_result_backend_closes_with_1013(
    settings: Settings, user: User, closed_port: int
) -> None:
    unreachable = settings.model_copy(
        update={"CELERY_RESULT_BACKEND_URL": f"redis://127.0.0.1:{closed_port}/0"}
    )
    app = create_app(unreachable)
    with small_socket_limits(app):
        async with app.router.lifespan_context(app), listening(app) as address:
            began = time.monotonic()
            messages, code, _ = await follow(address, uuid.uuid4(), token_message(user, settings))
    assert (messages, code) == ([], CloseCode.TRY_AGAIN_LATER)
    assert time.monotonic() - began < 5


# Celery's Redis backend still calls redis-py's setex.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
async def test_concluding_never_overwrites_a_final_record(
    server: str,
    client: AsyncClient,
    task_engine: TaskEngine,
    celery: Celery,
    user: User,
    auth_headers,
    settings: Settings,
) -> None:
    """The socket read the record while it was PENDING; then a DELETE kept
    REVOKED, and then a worker that had the task anyway published SUCCESS:
    the first end kept is the one everybody sees."""
    headers = auth_headers(user)
    with unserved_queue(celery) as queue:
        task_id = await task_engine.submit(user.id, "echo", echo("x", queue=queue))
        async with connect(socket_url(server, task_id)) as socket:
            await socket.send(token_message(user, settings))
            assert json.loads(await socket.recv())["status"] == "PENDING"
            revoked = await client.delete(f"{TASKS}/{task_id}", headers=headers)
            assert revoked.json()["status"] == "REVOKED"
            # As a worker stores and publishes a state (this one never ran it).
            celery.backend.store_result(str(task_id), "x", states.SUCCESS)
            rest = await read_all(socket)
    assert socket.close_code == CloseCode.FINISHED
    assert statuses(rest) == ["REVOKED"]
    assert await status_of(client, headers, task_id) == "REVOKED"


async def test_an_end_the_api_decides_reaches_the_socket(
    settings: Settings, celery: Celery, user: User, auth_headers
) -> None:
    """Cancelled in a queue no worker serves: no worker ever publishes its
    end; the socket reads it from the record once quiet (within 5 s)."""
    headers = auth_headers(user)
    async with unserved_app(settings, celery) as (app, client, _):
        with small_socket_limits(app):
            async with listening(app) as server:
                task_id = await start_echo(client, headers, "x")
                async with connect(socket_url(server, task_id)) as socket:
                    await socket.send(token_message(user, settings))
                    assert json.loads(await socket.recv())["status"] == "PENDING"
                    revoked = await client.delete(f"{TASKS}/{task_id}", headers=headers)
                    assert revoked.json()["status"] == "REVOKED"
                    rest = await read_all(socket)
    assert socket.close_code == CloseCode.FINISHED
    assert statuses(rest) == ["REVOKED"]
