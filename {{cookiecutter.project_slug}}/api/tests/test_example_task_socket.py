"""WS /api/v1/ws/tasks/{task_id} following the example tasks: the progress of
long-running, and the members of the workflows as they finish. Removed with
the examples; the socket itself is tested with the echo task in
test_task_socket.py."""

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from websockets.asyncio.client import connect

from app.api.v1.sockets.config import SocketSettings
from app.api.v1.sockets.task_socket import CloseCode
from app.core.config import Settings
from app.models import User
from tests.conftest import MakeUser
from tests.sockets import (
    assert_in_order,
    assert_members_reported,
    assert_one_final_last,
    assert_progress_grows,
    follow_to_the_end,
    open_following,
    read_all,
    small_socket_limits,
    socket_url,
    token_message,
)
from tests.tasks import TASKS, submitted

pytestmark = pytest.mark.usefixtures("worker")

WORKFLOWS = "/api/v1/workflows"


@pytest.fixture(scope="module", autouse=True)
def socket_settings(app: FastAPI) -> Iterator[SocketSettings]:
    with small_socket_limits(app) as settings:
        yield settings


async def test_long_running_task_sends_each_state_in_order_then_its_result(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    task_id = await submitted(client, headers, f"{TASKS}/long-running", {"seconds": 1, "steps": 5})
    messages = await follow_to_the_end(server, task_id, token_message(user, settings))
    assert_in_order(messages, ["PENDING", "STARTED", "PROGRESS", "SUCCESS"])
    done = assert_progress_grows(messages)
    assert done and done[-1] <= 5
    assert all(m["result"]["total"] == 5 for m in messages if m["status"] == "PROGRESS")
    assert messages[-1] == {"task_id": task_id, "status": "SUCCESS", "result": 5, "error": None}
    # The socket kept the result with the task's record.
    assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).json() == messages[-1]


async def test_a_running_task_cancelled_ends_revoked(
    server: str, client: AsyncClient, user: User, auth_headers, settings: Settings
) -> None:
    headers = auth_headers(user)
    task_id = await submitted(client, headers, f"{TASKS}/long-running", {"seconds": 4, "steps": 40})
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
    task_id = await submitted(client, headers, f"{WORKFLOWS}/{workflow}", body)
    messages = await follow_to_the_end(server, task_id, token_message(user, settings))
    assert_members_reported(messages, total)
    waited = (await client.post(f"{WORKFLOWS}/{workflow}", json=body, headers=headers)).json()
    assert waited["result"] == result
    assert (messages[-1]["status"], messages[-1]["result"]) == ("SUCCESS", result)


async def test_a_paused_reader_still_gets_the_final_state_and_holds_up_nobody(
    server: str, client: AsyncClient, make_user: MakeUser, auth_headers, settings: Settings
) -> None:
    slow_user, quick_user = await make_user(), await make_user()
    body = {"seconds": 1.5, "steps": 60}
    slow_id = await submitted(client, auth_headers(slow_user), f"{TASKS}/long-running", body)
    quick_id = await submitted(client, auth_headers(quick_user), f"{TASKS}/long-running", body)
    slow = await open_following(server, slow_id, token_message(slow_user, settings))
    try:
        # The slow client stops reading from its socket.
        slow.transport.pause_reading()
        began = time.monotonic()
        quick = await follow_to_the_end(server, quick_id, token_message(quick_user, settings))
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
