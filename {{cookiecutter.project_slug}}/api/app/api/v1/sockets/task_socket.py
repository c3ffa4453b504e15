"""`WS /api/v1/ws/tasks/{task_id}`: a task's state, pushed as it changes, the final
one last, after a first message `{"token": "<access token>"}` from the client (not
in the URL, which proxies log); docs/websockets.md tells the whole protocol."""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator
from enum import IntEnum
from typing import Annotated

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect

from app.api import API_V1_PREFIX
from app.api.deps import AccountCacheDep, SettingsDep, TaskEngineDep
from app.api.v1.sockets.config import SocketSettings, get_socket_settings
from app.core.config import Settings
from app.core.security import InvalidTokenError
from app.services.accounts import Account, AccountCache, InactiveUserError, account_for_token
from taskengine import ServiceUnavailableError, TaskNotFoundError, TaskReply, TooManyFollowersError

logger = logging.getLogger(__name__)

SocketSettingsDep = Annotated[SocketSettings, Depends(get_socket_settings)]


class CloseCode(IntEnum):
    FINISHED = 1000  # the final state was sent
    INTERNAL_ERROR = 1011  # logged by the API
    TRY_AGAIN_LATER = 1013  # a service the states come from is unavailable
    UNAUTHENTICATED = 4401  # no valid token within WS_AUTH_TIMEOUT
    INACTIVE_USER = 4403
    TASK_NOT_FOUND = 4404  # another user's task gets the same answer
    TOO_MANY_SOCKETS = 4429  # WS_SOCKETS_PER_USER open already


class RefusedError(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


router = APIRouter(prefix=f"{API_V1_PREFIX}/ws")


@router.websocket("/tasks/{task_id}", name="follow-task")
async def follow_task(
    websocket: WebSocket,
    # Any text: a malformed id is refused like an unknown one, after authentication.
    task_id: str,
    accounts: AccountCacheDep,
    settings: SettingsDep,
    socket_settings: SocketSettingsDep,
    engine: TaskEngineDep,
) -> None:
    await websocket.accept()
    try:
        user = await authenticate(websocket, accounts, settings, socket_settings.WS_AUTH_TIMEOUT)
        at_most, queue_size = socket_settings.WS_SOCKETS_PER_USER, socket_settings.WS_QUEUE_SIZE
        states = engine.follow(user.id, parse_id(task_id), at_most=at_most, queue_size=queue_size)
        await send_until_final(websocket, states)
        await close(websocket, CloseCode.FINISHED, "")
    except WebSocketDisconnect:
        pass  # the client left: leaving the blocks above let go of everything
    except RefusedError as refusal:
        await close(websocket, refusal.code, refusal.reason)
    except TaskNotFoundError:
        await close(websocket, CloseCode.TASK_NOT_FOUND, "Task not found")
    except TooManyFollowersError:
        await close(websocket, CloseCode.TOO_MANY_SOCKETS, "Too many open sockets")
    except ServiceUnavailableError:
        await close(websocket, CloseCode.TRY_AGAIN_LATER, "Result backend unavailable")
    except Exception:
        logger.exception("Task socket %s failed", task_id)
        await close(websocket, CloseCode.INTERNAL_ERROR, "Internal error")


async def close(websocket: WebSocket, code: CloseCode, reason: str) -> None:
    """Close with the code, unless the client is already gone."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code, reason)


async def authenticate(
    websocket: WebSocket, accounts: AccountCache, settings: Settings, token_wait: float
) -> Account:
    try:
        async with asyncio.timeout(token_wait):
            message = await websocket.receive()
    except TimeoutError:
        raise RefusedError(CloseCode.UNAUTHENTICATED, "No token in time") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    token = token_in(message.get("text"))
    if token is None:
        raise RefusedError(CloseCode.UNAUTHENTICATED, 'Send {"token": "..."} first')
    try:
        return await account_for_token(accounts, token, settings)
    except InvalidTokenError:
        raise RefusedError(CloseCode.UNAUTHENTICATED, "Could not validate credentials") from None
    except InactiveUserError:
        raise RefusedError(CloseCode.INACTIVE_USER, "Inactive user") from None


def token_in(text: str | None) -> str | None:
    """The token of a first message `{"token": "..."}`, or None."""
    try:
        message = json.loads(text or "")
    except ValueError:
        return None
    token = message.get("token") if isinstance(message, dict) else None
    return token if isinstance(token, str) else None


def parse_id(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise TaskNotFoundError(task_id) from None


async def send_until_final(websocket: WebSocket, states: AsyncGenerator[TaskReply]) -> None:
    """Send each state until the final one; WebSocketDisconnect as soon as the
    client leaves, whether a state is on its way or not."""
    leaving = asyncio.ensure_future(until_disconnected(websocket))
    try:
        async with contextlib.aclosing(states):
            while True:
                next_state = asyncio.ensure_future(anext(states, None))
                await asyncio.wait({next_state, leaving}, return_when=asyncio.FIRST_COMPLETED)
                if not next_state.done():
                    next_state.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await next_state
                    raise WebSocketDisconnect
                reply = next_state.result()
                if reply is None:
                    return
                await websocket.send_text(reply.model_dump_json())
    finally:
        leaving.cancel()


async def until_disconnected(websocket: WebSocket) -> None:
    """Read until the client leaves; what it says after its token is ignored."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
