"""The example tasks and workflows through the API, run by a real worker on the
real broker and result backend. Removed with the examples; what every render
keeps is tested with the echo task in test_tasks.py (which also checks every
task route for what does not depend on its body: the wrong method, a body that
cannot be read, a token)."""

import asyncio

import pytest
from celery import Celery
from httpx import AsyncClient

from app.core.config import Settings
from app.models import User
from tests.tasks import (
    TASKS,
    NotFinite,
    assert_both_routes_give,
    assert_dead_result_backend_is_503,
    assert_refused_unsent,
    not_finite,
    poll,
    status_of,
    wait_for_state,
    waited_task_id,
)

pytestmark = pytest.mark.usefixtures("worker")

WORKFLOWS = "/api/v1/workflows"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("integer-multiplication", {"integer": 21}, 42),
        ("integer-multiplication", {"integer": -7}, -14),
        ("integers-sum", {"integers": [1, 2, 3, 36]}, 42),
        ("integers-sum", {"integers": [5, 5, 5]}, 15),
    ],
)
async def test_each_waits_for_its_result_and_its_async_twin_gives_it_later(
    client: AsyncClient,
    celery: Celery,
    user: User,
    auth_headers,
    path: str,
    body: dict,
    expected: int,
) -> None:
    headers = auth_headers(user)
    await assert_both_routes_give(client, celery, headers, f"{TASKS}/{path}", body, expected)


WORKFLOW_CASES = [
    ("chain", 3, 2, 3 * 2**3),
    ("chain", 1, 10, 2**11),
    ("group", 3, 4, [6, 6, 6, 6]),
    ("chord", 3, 5, 30),
]


@pytest.mark.parametrize(("workflow", "integer", "size", "expected"), WORKFLOW_CASES)
async def test_workflows_wait_for_their_result(
    client: AsyncClient, user: User, auth_headers, workflow: str, integer: int, size: int, expected
) -> None:
    response = await client.post(
        f"{WORKFLOWS}/{workflow}",
        json={"integer": integer, "size": size},
        headers=auth_headers(user),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["result"]) == ("SUCCESS", expected)


@pytest.mark.parametrize(("workflow", "integer", "size", "expected"), WORKFLOW_CASES)
async def test_workflows_run_in_the_background(
    client: AsyncClient, user: User, auth_headers, workflow: str, integer: int, size: int, expected
) -> None:
    headers = auth_headers(user)
    response = await client.post(
        f"{WORKFLOWS}/{workflow}/async", json={"integer": integer, "size": size}, headers=headers
    )
    assert response.status_code == 202
    reply = await poll(client, headers, response.json()["task_id"])
    assert (reply["status"], reply["result"]) == ("SUCCESS", expected)
    (listed,) = (await client.get(TASKS, headers=headers)).json()["items"]
    assert listed["name"] == workflow


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{WORKFLOWS}/chain", {"integer": 1, "size": 0}),
        (f"{WORKFLOWS}/group", {"integer": 1, "size": 51}),
        (f"{WORKFLOWS}/chord/async", {"integer": "x", "size": 2}),
        (f"{TASKS}/integers-sum", {"integers": []}),
        (f"{TASKS}/integers-sum", {"integers": list(range(1001))}),
        (f"{TASKS}/integer-multiplication", {"integer": 1.5}),
        # Strict: what the API documents as an integer is one.
        (f"{TASKS}/integer-multiplication", {"integer": True}),
        (f"{TASKS}/integer-multiplication", {"integer": "21"}),
        (f"{TASKS}/integers-sum", {"integers": [1, False]}),
        (f"{WORKFLOWS}/chord", {"integer": 1, "size": "3"}),
        # Bounded by what every layer holds: a JSON client's integers, Python's
        # digit limit when a result is encoded.
        (f"{TASKS}/integer-multiplication", {"integer": 2**53}),
        (f"{TASKS}/integer-multiplication", {"integer": -(2**53)}),
        (f"{TASKS}/integer-multiplication/async", {}),
        (f"{TASKS}/long-running", {"seconds": 0}),
        (f"{TASKS}/long-running/async", {"seconds": 1, "steps": 101}),
        # `seconds` takes any JSON number: these are refused for what they
        # are, not only for not being a string (as by echo's `text`).
        *((f"{TASKS}/long-running", body) for body in not_finite("seconds")),
    ],
)
async def test_bad_bodies_are_422_and_send_nothing(
    client: AsyncClient, user: User, auth_headers, path: str, body: dict | NotFinite
) -> None:
    await assert_refused_unsent(client, auth_headers(user), path, body)


async def test_unknown_workflow_is_404(client: AsyncClient, user: User, auth_headers) -> None:
    body = {"integer": 1, "size": 2}
    response = await client.post(f"{WORKFLOWS}/spiral", json=body, headers=auth_headers(user))
    assert response.status_code == 404


async def test_cancelling_a_running_task_stops_it(
    client: AsyncClient, celery: Celery, user: User, auth_headers
) -> None:
    headers = auth_headers(user)
    response = await client.post(
        f"{TASKS}/long-running/async", json={"seconds": 3, "steps": 30}, headers=headers
    )
    task_id = response.json()["task_id"]
    await wait_for_state(celery, task_id, "PROGRESS")
    progress = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
    assert progress["status"] == "PROGRESS"
    assert progress["result"]["total"] == 30
    assert 1 <= progress["result"]["done"] < 30
    response = await client.delete(f"{TASKS}/{task_id}", headers=headers)
    assert response.status_code == 202
    # It runs: the answer says so, and the worker tells the end.
    assert response.json()["status"] == "PROGRESS"
    assert (await poll(client, headers, task_id))["status"] == "REVOKED"
    again = await client.delete(f"{TASKS}/{task_id}", headers=headers)
    assert again.status_code == 409
    assert again.json() == {"detail": "Task already REVOKED"}


async def test_a_waited_task_cancelled_meanwhile_is_409(
    client: AsyncClient, celery: Celery, user: User, auth_headers
) -> None:
    """A running task, cancelled while a request waits for it: the worker
    stops it between two steps, and the request learns it."""
    headers = auth_headers(user)
    waiting = asyncio.ensure_future(
        client.post(f"{TASKS}/long-running", json={"seconds": 3, "steps": 30}, headers=headers)
    )
    task_id = await waited_task_id(client, headers)
    await wait_for_state(celery, task_id, "PROGRESS")
    cancelled = await client.delete(f"{TASKS}/{task_id}", headers=headers)
    assert cancelled.status_code == 202
    response = await asyncio.wait_for(waiting, 10)
    assert response.status_code == 409
    assert response.json()["detail"]["status"] == "REVOKED"
    assert await status_of(client, headers, task_id) == "REVOKED"


async def test_a_wait_that_cannot_end_in_time_is_refused_and_async_takes_it(
    client: AsyncClient, settings: Settings, user: User, auth_headers
) -> None:
    headers = auth_headers(user)
    too_long = {"seconds": settings.TASK_WAIT_TIMEOUT, "steps": 100}
    response = await client.post(f"{TASKS}/long-running", json=too_long, headers=headers)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body"]
    assert "/async" in problem["msg"]
    # Refused before anything was sent or recorded.
    assert (await client.get(TASKS, headers=headers)).json()["total"] == 0
    just_in_time = {"seconds": settings.TASK_WAIT_TIMEOUT / 20, "steps": 1}
    response = await client.post(f"{TASKS}/long-running", json=just_in_time, headers=headers)
    assert response.status_code == 200
    accepted = await client.post(f"{TASKS}/long-running/async", json=too_long, headers=headers)
    assert accepted.status_code == 202
    # Stopped at its next step (0.1 s), not left to hold a worker process.
    stopped = await client.delete(f"{TASKS}/{accepted.json()['task_id']}", headers=headers)
    assert stopped.status_code == 202


@pytest.mark.parametrize(
    "path", [f"{WORKFLOWS}/chord", f"{WORKFLOWS}/chord/async", f"{TASKS}/integers-sum"]
)
async def test_dead_result_backend_is_503_without_blocking(
    settings: Settings, user: User, auth_headers, dead_port: int, path: str
) -> None:
    """A chord writes its size to Redis before it is sent: that fails fast too."""
    body = {"integer": 1, "size": 3, "integers": [1, 2]}
    await assert_dead_result_backend_is_503(settings, auth_headers(user), dead_port, path, body)
