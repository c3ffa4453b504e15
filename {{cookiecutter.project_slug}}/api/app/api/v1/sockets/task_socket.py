"""`WS /api/v1/ws/tasks/{task_id}`: a task's state, pushed as it changes.

The client sends `{"token": "<access token>"}` as its first message. Not in
the URL, which proxies and servers write to their logs; not in a header,
because a browser's WebSocket cannot set one, and the subprotocol header that
it can set must be echoed back by the server. Then the server sends the
task's state as JSON (the body of GET /tasks/{task_id}) each time it changes,
the final one last, and closes with one of the CloseCode values below.

uvicorn pings each socket every 20 s and drops a peer that does not answer
within 20 s (its --ws-ping-interval and --ws-ping-timeout).
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from enum import IntEnum
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.requests import HTTPConnection
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import API_V1_PREFIX
from app.api.deps import AccountCacheDep, SessionDep, SettingsDep, TaskRunnerDep
from app.api.ownership import find_owned
from app.api.v1.sockets.config import SocketSettings, get_socket_settings
from app.api.v1.sockets.outbox import Outbox
from app.api.v1.sockets.slots import SocketSlots, TooManySocketsError
from app.core.config import Settings
from app.core.producer.errors import ResultBackendUnavailableError
from app.core.producer.results import Meta
from app.core.security import InvalidTokenError
from app.models import TaskRecord
from app.schemas.task import TaskReply
from app.services.account_cache import Account, AccountCache
from app.services.task_progress import TaskProgress
from app.services.task_states import FINAL
from app.services.tasks import TaskRunner
from app.services.users import InactiveUserError, account_for_token

logger = logging.getLogger(__name__)

# Seconds without news after which a socket reads the task's record: an end
# the API decides itself (a task revoked in the queue, a task lost) is
# published by no worker.
QUIET_RECHECK = 5.0

SocketSettingsDep = Annotated[SocketSettings, Depends(get_socket_settings)]


class CloseCode(IntEnum):
    # The final state was sent.
    FINISHED = 1000
    # An unexpected error, logged by the API.
    INTERNAL_ERROR = 1011
    # Redis, where the states come from, cannot be reached: reconnect later.
    TRY_AGAIN_LATER = 1013
    # No valid token within WS_AUTH_TIMEOUT: none, malformed, expired, forged,
    # or for an account that no longer exists.
    UNAUTHENTICATED = 4401
    INACTIVE_USER = 4403
    # No task of yours has this id (another user's task gets the same answer).
    TASK_NOT_FOUND = 4404
    # You already hold WS_SOCKETS_PER_USER sockets open.
    TOO_MANY_SOCKETS = 4429


class RefusedError(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@contextlib.asynccontextmanager
async def socket_slots_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One SocketSlots per process, on the Redis client of the app's lifespan
    (which runs first): its renewal task covers every socket of the process."""
    settings: Settings = app.state.settings
    app.state.socket_slots = SocketSlots(app.state.redis, settings.RESULT_SUBSCRIBE_TIMEOUT)
    try:
        yield
    finally:
        await app.state.socket_slots.close()


async def socket_slots(connection: HTTPConnection) -> SocketSlots:
    slots: SocketSlots = connection.app.state.socket_slots
    return slots


router = APIRouter(prefix=f"{API_V1_PREFIX}/ws", lifespan=socket_slots_lifespan)


@router.websocket("/tasks/{task_id}", name="follow-task")
async def follow_task(
    websocket: WebSocket,
    # Any text: a malformed id is refused like an unknown one, after authentication.
    task_id: str,
    session: SessionDep,
    accounts: AccountCacheDep,
    settings: SettingsDep,
    socket_settings: SocketSettingsDep,
    runner: TaskRunnerDep,
    slots: Annotated[SocketSlots, Depends(socket_slots)],
) -> None:
    await websocket.accept()
    try:
        user = await authenticate(websocket, accounts, settings, socket_settings.WS_AUTH_TIMEOUT)
        async with slots.hold(user.id, socket_settings.WS_SOCKETS_PER_USER):
            task = await owned_task(session, task_id, user)
            final = await send_states(
                websocket, session, runner, task, socket_settings.WS_QUEUE_SIZE
            )
            await send(websocket, await runner.conclude(session, task.id, final))
            await close(websocket, CloseCode.FINISHED, "")
    except WebSocketDisconnect:
        pass  # the client left: leaving the blocks above unsubscribed and freed its slot
    except RefusedError as refusal:
        await close(websocket, refusal.code, refusal.reason)
    except TooManySocketsError:
        await close(websocket, CloseCode.TOO_MANY_SOCKETS, "Too many open sockets")
    except ResultBackendUnavailableError:
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


async def owned_task(session: AsyncSession, task_id: str, user: Account) -> TaskRecord:
    try:
        record_id = uuid.UUID(task_id)
    except ValueError:
        raise RefusedError(CloseCode.TASK_NOT_FOUND, "Task not found") from None
    task = await find_owned(session, TaskRecord, record_id, user)
    if task is None:
        raise RefusedError(CloseCode.TASK_NOT_FOUND, "Task not found")
    return task


class Follower:
    """Turns each state the listener publishes into the reply to send."""

    def __init__(self, progress: TaskProgress, outbox: Outbox) -> None:
        self._progress = progress
        self._outbox = outbox

    def deliver(self, meta: Meta) -> None:
        reply = self._progress.update(meta)
        if reply is not None:
            self._outbox.put(reply)

    def fail(self, error: Exception) -> None:
        self._outbox.fail(error)


async def send_states(
    websocket: WebSocket,
    session: AsyncSession,
    runner: TaskRunner,
    task: TaskRecord,
    queue_size: int,
) -> TaskReply:
    """Send each state of the task until the final one, which is returned
    unsent (it is recorded first). WebSocketDisconnect if the client leaves."""
    # No database connection stays checked out while the socket lives.
    await session.commit()
    if task.status in FINAL:
        return task.reply()
    progress = TaskProgress(task)
    outbox = Outbox(queue_size)
    async with runner.listener.following(task.all_ids, Follower(progress, outbox)) as subscription:
        first = progress.start(await subscription.stored())
        # Queued at once: the listener may queue newer states while we wait below.
        if first is not None:
            outbox.put(first)
        if first is None or first.status not in FINAL:
            # Another reader may have kept the final state, and had Redis
            # forget it, between the first read of the record and the
            # subscription: then only the record still knows it.
            await session.refresh(task)
            await session.commit()
            if task.status in FINAL:
                return task.reply()
        leaving = asyncio.ensure_future(until_disconnected(websocket))
        try:
            while True:
                reply = await next_reply(outbox, leaving, QUIET_RECHECK)
                if reply is None:
                    reply = await read_record(session, runner, task)
                    if reply.status not in FINAL:
                        continue
                if reply.status in FINAL:
                    return reply
                await send(websocket, reply)
        finally:
            leaving.cancel()


async def read_record(session: AsyncSession, runner: TaskRunner, task: TaskRecord) -> TaskReply:
    """The task's state as GET gives it: the API may have decided its end
    itself (revoked in the queue, lost), with nothing published."""
    await session.refresh(task)
    reply = await runner.refresh(session, task)
    await session.commit()  # no connection stays checked out
    return reply


async def next_reply(
    outbox: Outbox, leaving: "asyncio.Future[None]", quiet: float
) -> TaskReply | None:
    """The next reply to send; None after `quiet` seconds without one."""
    getting = asyncio.ensure_future(outbox.get())
    await asyncio.wait((getting, leaving), timeout=quiet, return_when=asyncio.FIRST_COMPLETED)
    if getting.done():
        return getting.result()
    getting.cancel()
    if leaving.done():
        raise WebSocketDisconnect
    return None


async def until_disconnected(websocket: WebSocket) -> None:
    """Read until the client leaves; what it says after its token is ignored."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def send(websocket: WebSocket, reply: TaskReply) -> None:
    await websocket.send_text(reply.model_dump_json())
