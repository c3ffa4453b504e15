"""What the tests of WS /api/v1/ws/tasks/{task_id} share: a client of the
socket over a real connection, and small limits that the tests reach quickly."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.v1.sockets.config import SocketSettings, get_socket_settings
from app.api.v1.sockets.task_socket import CloseCode
from app.core.config import Settings
from app.core.security import create_access_token
from app.models import User
from taskengine import TaskEngine, TaskNotFoundError, TooManyFollowersError

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}
# Small, so that the tests reach the limits quickly.
SOCKET_SETTINGS = SocketSettings(WS_AUTH_TIMEOUT=0.5, WS_SOCKETS_PER_USER=3, WS_QUEUE_SIZE=8)


@contextlib.contextmanager
def small_socket_limits(app: FastAPI) -> Iterator[SocketSettings]:
    """SOCKET_SETTINGS for the app's sockets, within the block."""
    app.dependency_overrides[get_socket_settings] = lambda: SOCKET_SETTINGS
    try:
        yield SOCKET_SETTINGS
    finally:
        del app.dependency_overrides[get_socket_settings]


def socket_url(server: str, task_id: object) -> str:
    return f"ws://{server}/api/v1/ws/tasks/{task_id}"


def token_message(user: User, settings: Settings) -> str:
    return json.dumps({"token": create_access_token(user.id, settings)})


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


async def follow(
    server: str, task_id: object, first_message: str
) -> tuple[list[dict[str, Any]], int, str]:
    """Open a socket, send the first message, read until closed: the messages,
    the close code and its reason."""
    async with connect(socket_url(server, task_id)) as socket:
        await socket.send(first_message)
        messages = await read_all(socket)
    assert socket.close_code is not None
    return messages, socket.close_code, socket.close_reason or ""


async def follow_to_the_end(server: str, task_id: object, message: str) -> list[dict[str, Any]]:
    """Follow the task with a valid token until the server closes the socket,
    the task ended (FINISHED), after one final state, the last; the messages."""
    messages, code, _ = await follow(server, task_id, message)
    assert code == CloseCode.FINISHED, (code, messages)
    assert_one_final_last(messages)
    return messages


async def open_following(server: str, task_id: object, message: str) -> ClientConnection:
    """A socket that is past authentication and follows the task (its first state read)."""
    socket = await connect(socket_url(server, task_id))
    await socket.send(message)
    async with asyncio.timeout(10):
        await socket.recv()
    return socket


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [message["status"] for message in messages]


def assert_one_final_last(messages: list[dict[str, Any]]) -> None:
    assert [status in FINAL for status in statuses(messages)].count(True) == 1, messages
    assert messages[-1]["status"] in FINAL, messages


def assert_in_order(messages: list[dict[str, Any]], order: list[str]) -> None:
    ranks = [order.index(status) for status in statuses(messages)]
    assert ranks == sorted(ranks), messages


def assert_members_reported(messages: list[dict[str, Any]], total: int) -> None:
    """A workflow's PROGRESS states: how many of its `total` tasks have ended,
    growing, before the final state."""
    progress = [m["result"] for m in messages if m["status"] == "PROGRESS"]
    done = [counted["done"] for counted in progress]
    assert done == sorted(set(done)) and all(0 < count < total for count in done), messages
    assert all(counted["total"] == total for counted in progress), messages


def assert_progress_grows(messages: list[dict[str, Any]]) -> list[int]:
    done = [m["result"]["done"] for m in messages if m["status"] == "PROGRESS"]
    assert done == sorted(set(done)), messages
    return done


async def follows_nothing(engine: TaskEngine, owner_id: uuid.UUID) -> bool:
    """Whether the owner follows no task, in any process: a follower that may
    be the only one is let in (then let go at once)."""
    followed = engine.follow(owner_id, uuid.uuid4(), at_most=1)
    try:
        async with contextlib.aclosing(followed):
            await anext(followed)
    except TooManyFollowersError:
        return False
    except TaskNotFoundError:  # let in, and no such task
        return True
    raise AssertionError("a task of a random id was found")
