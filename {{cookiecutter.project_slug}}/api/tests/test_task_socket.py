"""WS /api/v1/ws/tasks/{task_id} over real sockets, served by uvicorn, with a
real worker, broker and result backend."""

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from celery.canvas import Signature
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.v1.sockets import task_socket
from app.api.v1.sockets.config import SocketSettings, get_socket_settings
from app.api.v1.sockets.slots import KEY_PREFIX
from app.api.v1.sockets.task_socket import CloseCode
from app.core.config import Settings
from app.core.producer.catalog import INTEGERS_SUM
from app.core.security import create_access_token
from app.main import create_app
from app.models import TaskRecord, User
from app.schemas.task import TaskReply
from testkit import delete_queue
from tests.conftest import MakeUser, listening, serving

pytestmark = pytest.mark.usefixtures("worker")

TASKS = "/api/v1/tasks"
WORKFLOWS = "/api/v1/workflows"
FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
# Small, so that the tests reach the limits quickly.
SOCKET_SETTINGS = SocketSettings(WS_AUTH_TIMEOUT=0.5, WS_SOCKETS_PER_USER=3, WS_QUEUE_SIZE=8)


@pytest.fixture(scope="module", autouse=True)
def socket_settings(app: FastAPI) -> Iterator[SocketSettings]:
    app.dependency_overrides[get_socket_settings] = lambda: SOCKET_SETTINGS
    yield SOCKET_SETTINGS
    del app.dependency_overrides[get_socket_settings]


def socket_url(server: str, task_id: object) -> str:
    return f"ws://{server}/api/v1/ws/tasks/{task_id}"


async def read_all(socket: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    messages = []
    async with asyncio.timeout(30):
        try:
            async for message in socket:
                messages.append(json.loads(message))
        except ConnectionClosed:
            pass
    return messages


async def follow(server: str, task_id: object, first_message: str) -> tuple[list[dict], int, str]:
    """Open a socket, send the first message, read until closed: the messages,
    the close code and its reason."""
    async with connect(socket_url(server, task_id)) as socket:
        await socket.send(first_message)
        messages = await read_all(socket)
    assert socket.close_code is not None
    return messages, socket.close_code, socket.close_reason or ""


def token_message(user: User, settings: Settings) -> str:
    return json.dumps({"token": create_access_token(user.id, settings)})


async def start(client: AsyncClient, headers: dict, path: str, body: dict) -> str:
    response = await client.post(f"{path}/async", json=body, headers=headers)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def statuses(messages: list[dict]) -> list[str]:
    return [message["status"] for message in messages]


def assert_one_final_last(messages: list[dict]) -> None:
    assert [status in FINAL for status in statuses(messages)].count(True) == 1, messages
    assert messages[-1]["status"] in FINAL, messages


def assert_progress_grows(messages: list[dict]) -> list[int]:
    done = [m["result"]["done"] for m in messages if m["status"] == "PROGRESS"]
    assert done == sorted(set(done)), messages
    return done


async def test_long_running_task_sends_each_state_in_order_then_its_result(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    task_id = await start(client, headers, f"{TASKS}/long-running", {"seconds": 1, "steps": 5})
    messages, code, _ = await follow(server, task_id, token_message(user, settings))

    assert code == CloseCode.FINISHED
    assert_one_final_last(messages)
    order = ["PENDING", "STARTED", "PROGRESS", "SUCCESS"]
    ranks = [order.index(status) for status in statuses(messages)]
    assert ranks == sorted(ranks), messages
    done = assert_progress_grows(messages)
    assert done and done[-1] <= 5
    assert all(m["result"]["total"] == 5 for m in messages if m["status"] == "PROGRESS")
    assert messages[-1] == {"task_id": task_id, "status": "SUCCESS", "result": 5, "error": None}
    # The socket kept the result with the task's record.
    assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).json() == messages[-1]


async def test_failing_task_ends_with_its_error(
    server: str, app: FastAPI, user: User, settings: Settings
) -> None:
    runner = app.state.task_runner

    def build(expires: datetime) -> Signature:
        return runner.catalog.task(INTEGERS_SUM, [1, "x"], expires=expires)

    task_id = await runner.submit(user, "failing-sum", build)
    messages, code, _ = await follow(server, task_id, token_message(user, settings))
    assert code == CloseCode.FINISHED
    assert_one_final_last(messages)
    assert messages[-1]["status"] == "FAILURE"
    assert messages[-1]["error"] == {"type": "TypeError", "message": "expected a list of integers"}


async def test_revoked_task_ends_revoked(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    task_id = await start(client, headers, f"{TASKS}/long-running", {"seconds": 4, "steps": 40})
    async with connect(socket_url(server, task_id)) as socket:
        await socket.send(token_message(user, settings))
        async with asyncio.timeout(10):
            while json.loads(await socket.recv())["status"] != "PROGRESS":
                pass
        assert (await client.delete(f"{TASKS}/{task_id}", headers=headers)).status_code == 202
        rest = await read_all(socket)
    assert socket.close_code == CloseCode.FINISHED
    assert rest[-1]["status"] == "REVOKED"
    assert_one_final_last(rest)


@pytest.mark.parametrize(
    ("workflow", "size", "total", "result"),
    [("chain", 3, 4, 21 * 2**4), ("group", 4, 4, [42] * 4), ("chord", 4, 5, 42 * 4)],
)
async def test_workflow_reports_members_finished_then_the_waiting_endpoints_result(
    server: str,
    client: AsyncClient,
    user: User,
    auth_headers,
    settings: Settings,
    workflow: str,
    size: int,
    total: int,
    result: Any,
) -> None:
    headers = auth_headers(user)
    body = {"integer": 21, "size": size}
    task_id = await start(client, headers, f"{WORKFLOWS}/{workflow}", body)
    messages, code, _ = await follow(server, task_id, token_message(user, settings))
    assert code == CloseCode.FINISHED
    assert_one_final_last(messages)
    assert_progress_grows(messages)
    assert all(m["result"]["total"] == total for m in messages if m["status"] == "PROGRESS")
    waited = (await client.post(f"{WORKFLOWS}/{workflow}", json=body, headers=headers)).json()
    assert waited["result"] == result
    assert (messages[-1]["status"], messages[-1]["result"]) == ("SUCCESS", result)


async def test_a_finished_task_gets_its_final_state_at_once(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    waited = await client.post(
        f"{TASKS}/integer-multiplication", json={"integer": 4}, headers=headers
    )
    assert waited.status_code == 200
    messages, code, _ = await follow(
        server, waited.json()["task_id"], token_message(user, settings)
    )
    assert (messages, code) == ([waited.json()], CloseCode.FINISHED)

    # Finished in the worker, never read since: the result is still in Redis only.
    task_id = await start(client, headers, f"{TASKS}/integer-multiplication", {"integer": 5})
    await asyncio.sleep(1)
    messages, code, _ = await follow(server, task_id, token_message(user, settings))
    assert statuses(messages) == ["SUCCESS"]
    assert messages[0]["result"] == 10


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
    task_id = await start(
        client, auth_headers(user), f"{TASKS}/integer-multiplication", {"integer": 1}
    )
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
    task_id = await start(
        client, auth_headers(user), f"{TASKS}/integer-multiplication", {"integer": 1}
    )
    inactive = await make_user(is_active=False)
    messages, code, _ = await follow(server, task_id, token_message(inactive, settings))
    assert (messages, code) == ([], CloseCode.INACTIVE_USER)


async def refusal_queries(app: FastAPI, server: str, task_id: object, message: str) -> int:
    """Refused with 4404; how many SQL statements the API ran for it."""
    statements = []

    def count(*_: object) -> None:
        statements.append(1)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        messages, code, _ = await follow(server, task_id, message)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (messages, code) == ([], CloseCode.TASK_NOT_FOUND)
    return len(statements)


async def test_another_users_task_is_refused_like_an_unknown_one(
    server: str,
    app: FastAPI,
    client: AsyncClient,
    make_user: MakeUser,
    auth_headers,
    settings: Settings,
) -> None:
    owner, other = await make_user(), await make_user()
    task_id = await start(
        client, auth_headers(owner), f"{TASKS}/integer-multiplication", {"integer": 1}
    )
    token = token_message(other, settings)
    # The first refusal also reads the account, which the next ones find kept.
    await refusal_queries(app, server, uuid.uuid4(), token)
    # The same code after the same work (one query either way), so the same time.
    theirs = await refusal_queries(app, server, task_id, token)
    unknown = await refusal_queries(app, server, uuid.uuid4(), token)
    assert theirs == unknown > 0
    await refusal_queries(app, server, "not-a-task-id", token)
    messages, _, _ = await follow(server, task_id, token_message(owner, settings))
    assert messages[-1]["result"] == 2


async def open_following(server: str, task_id: str, message: str) -> ClientConnection:
    """A socket that is past authentication and follows the task."""
    socket = await connect(socket_url(server, task_id))
    await socket.send(message)
    async with asyncio.timeout(10):
        await socket.recv()
    return socket


async def test_sockets_per_user_are_limited(
    server: str,
    app: FastAPI,
    client: AsyncClient,
    make_user: MakeUser,
    auth_headers,
    settings: Settings,
) -> None:
    user, other = await make_user(), await make_user()
    # Long enough to outlast the test even behind a busy worker; revoked at the end.
    body = {"seconds": 20, "steps": 20}
    task_id = await start(client, auth_headers(user), f"{TASKS}/long-running", body)
    message = token_message(user, settings)
    sockets = [
        await open_following(server, task_id, message)
        for _ in range(SOCKET_SETTINGS.WS_SOCKETS_PER_USER)
    ]
    try:
        messages, code, _ = await follow(server, task_id, message)
        assert (messages, code) == ([], CloseCode.TOO_MANY_SOCKETS)
        # Another user's sockets are counted apart.
        theirs = await start(
            client, auth_headers(other), f"{TASKS}/integer-multiplication", {"integer": 3}
        )
        messages, code, _ = await follow(server, theirs, token_message(other, settings))
        assert code == CloseCode.FINISHED
        # A closed socket frees its slot.
        await sockets.pop().close()

        async def slot_freed() -> bool:
            held = await app.state.redis.zcard(f"{KEY_PREFIX}{user.id}")
            return bool(held < SOCKET_SETTINGS.WS_SOCKETS_PER_USER)

        await eventually(slot_freed, 2)
        sockets.append(await open_following(server, task_id, message))
    finally:
        for socket in sockets:
            await socket.close()
        await client.delete(f"{TASKS}/{task_id}", headers=auth_headers(user))

    async def every_slot_free() -> bool:
        return await app.state.redis.zcard(f"{KEY_PREFIX}{user.id}") == 0

    await eventually(every_slot_free, 2)


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not within {seconds}s"
        await asyncio.sleep(0.05)


async def subscribers(app: FastAPI, task_ids: list[str]) -> int:
    """Redis' own count of subscriptions to the tasks' channels."""
    listener = app.state.task_runner.listener
    counts = await app.state.redis.pubsub_numsub(*(listener.meta_key(t) for t in task_ids))
    return sum(count for _, count in counts)


async def test_a_client_that_leaves_mid_task_leaves_nothing_behind(
    server: str, app: FastAPI, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    listener = app.state.task_runner.listener
    before = listener.channel_count
    headers = auth_headers(user)
    task_id = await start(client, headers, f"{WORKFLOWS}/chord", {"integer": 1, "size": 3})
    # One step: nothing is published for seconds, so only the client's leaving
    # can end the server's side of the socket.
    long_id = await start(client, headers, f"{TASKS}/long-running", {"seconds": 4, "steps": 1})
    sockets = [
        await open_following(server, task, token_message(user, settings))
        for task in (task_id, long_id)
    ]
    assert listener.channel_count > before
    for socket in sockets:
        await socket.close()

    async def nothing_left() -> bool:
        return (
            listener.channel_count == before
            and await subscribers(app, [task_id, long_id]) == 0
            and await app.state.redis.zcard(f"{KEY_PREFIX}{user.id}") == 0
        )

    await eventually(nothing_left, 1.5)
    await client.delete(f"{TASKS}/{long_id}", headers=headers)


async def test_a_paused_reader_still_gets_the_final_state_and_holds_up_nobody(
    server: str, client: AsyncClient, make_user: MakeUser, auth_headers, settings: Settings
) -> None:
    slow_user, quick_user = await make_user(), await make_user()
    body = {"seconds": 1.5, "steps": 60}
    slow_id = await start(client, auth_headers(slow_user), f"{TASKS}/long-running", body)
    quick_id = await start(client, auth_headers(quick_user), f"{TASKS}/long-running", body)
    slow = await open_following(server, slow_id, token_message(slow_user, settings))
    try:
        # The slow client stops reading from its socket.
        slow.transport.pause_reading()
        began = time.monotonic()
        quick, code, _ = await follow(server, quick_id, token_message(quick_user, settings))
        assert code == CloseCode.FINISHED
        assert quick[-1]["status"] == "SUCCESS"
        assert len(quick) > 10  # it saw its progress as it happened
        assert time.monotonic() - began < 10
        slow.transport.resume_reading()
        rest = await read_all(slow)
    finally:
        await slow.close()
    assert_one_final_last(rest)
    assert rest[-1]["result"] == 60
    assert_progress_grows(rest)


async def test_a_peer_that_stops_answering_pings_is_dropped(
    app: FastAPI, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    listener = app.state.task_runner.listener
    before = listener.channel_count
    headers = auth_headers(user)
    # One step: nothing is sent for seconds, so only the heartbeat finds the peer gone.
    task_id = await start(client, headers, f"{TASKS}/long-running", {"seconds": 4, "steps": 1})
    async with listening(app, ws_ping_interval=0.3, ws_ping_timeout=0.3) as impatient:
        socket = await open_following(impatient, task_id, token_message(user, settings))
        # A peer that is gone: it never reads, so it never answers a ping.
        socket.transport.pause_reading()

        async def dropped() -> bool:
            return (
                listener.channel_count == before
                and await app.state.redis.zcard(f"{KEY_PREFIX}{user.id}") == 0
            )

        try:
            await eventually(dropped, 2)
        finally:
            socket.transport.abort()
    await client.delete(f"{TASKS}/{task_id}", headers=headers)


async def test_an_unreachable_result_backend_closes_with_1013(
    settings: Settings, user: User, closed_port: int
) -> None:
    unreachable = settings.model_copy(
        update={"CELERY_RESULT_BACKEND_URL": f"redis://127.0.0.1:{closed_port}/0"}
    )
    app = create_app(unreachable)
    app.dependency_overrides[get_socket_settings] = lambda: SOCKET_SETTINGS
    async with app.router.lifespan_context(app), listening(app) as address:
        began = time.monotonic()
        messages, code, _ = await follow(address, uuid.uuid4(), token_message(user, settings))
    assert (messages, code) == ([], CloseCode.TRY_AGAIN_LATER)
    assert time.monotonic() - began < 5


async def test_a_final_state_kept_by_another_reader_first_is_not_missed(
    server: str,
    app: FastAPI,
    client: AsyncClient,
    user: User,
    auth_headers,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = auth_headers(user)
    task_id = await start(client, headers, f"{TASKS}/integer-multiplication", {"integer": 6})
    await asyncio.sleep(1)  # done in the worker; the record still says PENDING
    listener = app.state.task_runner.listener
    following = listener.following

    def read_first(*args: Any, **kwargs: Any) -> Any:
        # Between the socket's read of the record and its subscription, a GET
        # keeps the final state in the record and has Redis forget it.
        async def read_then_follow() -> Any:
            reply = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
            assert reply["status"] == "SUCCESS"
            return following(*args, **kwargs)

        return ReadThenFollow(read_then_follow())

    monkeypatch.setattr(listener, "following", read_first)
    messages, code, _ = await follow(server, task_id, token_message(user, settings))
    assert (statuses(messages), code) == (["SUCCESS"], CloseCode.FINISHED)
    assert messages[0]["result"] == 12


class ReadThenFollow:
    """An async context manager that awaits something before it enters another."""

    def __init__(self, before: Any) -> None:
        self._before = before
        self._inner: Any = None

    async def __aenter__(self) -> Any:
        self._inner = await self._before
        return await self._inner.__aenter__()

    async def __aexit__(self, *exc: object) -> Any:
        return await self._inner.__aexit__(*exc)


async def test_concluding_never_overwrites_a_final_record(
    app: FastAPI, client: AsyncClient, user: User, auth_headers
) -> None:
    runner = app.state.task_runner
    task_id = await start(
        client, auth_headers(user), f"{TASKS}/long-running", {"seconds": 0.5, "steps": 1}
    )
    async with app.state.sessionmaker() as follower, app.state.sessionmaker() as other:
        # The follower read the record while it was PENDING...
        assert (await follower.get(TaskRecord, uuid.UUID(task_id))).status == "PENDING"
        # ...then a DELETE recorded REVOKED before the follower saw the end.
        revoked = await other.get(TaskRecord, uuid.UUID(task_id))
        revoked.status = "REVOKED"
        await other.commit()
        success = TaskReply(task_id=uuid.UUID(task_id), status="SUCCESS", result=1)
        shown = await runner.conclude(follower, uuid.UUID(task_id), success)
    assert shown.status == "REVOKED"
    reply = (await client.get(f"{TASKS}/{task_id}", headers=auth_headers(user))).json()
    assert reply["status"] == "REVOKED"


async def test_an_end_the_api_decides_reaches_the_socket(
    settings: Settings, user: User, auth_headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoked in a queue no worker serves: no worker ever publishes its end,
    the socket reads it from the record once quiet."""
    monkeypatch.setattr(task_socket, "QUIET_RECHECK", 0.2)
    queue = f"test.quiet.{uuid.uuid4().hex[:12]}"
    app = create_app(settings.model_copy(update={"CELERY_TASK_QUEUE": queue}))
    headers = auth_headers(user)
    async with serving(app) as client, listening(app) as server:
        try:
            task_id = await start(
                client, headers, f"{TASKS}/integer-multiplication", {"integer": 1}
            )
            async with connect(socket_url(server, task_id)) as socket:
                await socket.send(token_message(user, settings))
                assert json.loads(await socket.recv())["status"] == "PENDING"
                revoked = await client.delete(f"{TASKS}/{task_id}", headers=headers)
                assert revoked.json()["status"] == "REVOKED"
                rest = await read_all(socket)
            assert socket.close_code == CloseCode.FINISHED
            assert statuses(rest) == ["REVOKED"]
        finally:
            delete_queue(app.state.task_runner.catalog.client, queue)
