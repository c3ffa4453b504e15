"""What the tests of tasks share: the echo task's signatures, what every task
route is checked for (its waiting route, its /async twin, the bodies it
refuses, a dead result backend), waiting for a state through the API or in the
result backend, and apps whose tasks go to a queue that no worker serves."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Celery, chain, chord, group, signature
from celery.canvas import Signature
from fastapi import FastAPI
from httpx import AsyncClient

from app.api.v1.private.tasks import ECHO
from app.core.config import Settings
from app.main import create_app
from testkit import declare_queue, delete_queue, stored_meta
from tests.conftest import serving

TASKS = "/api/v1/tasks"
FINAL = ("SUCCESS", "FAILURE", "REVOKED", "LOST")
POLL_TIMEOUT = 20


def echo(*args: Any, **options: Any) -> Signature:
    """The worker's echo task. Without arguments, in a chain, it echoes what
    the task before it gave; options as Celery takes them (queue, task_id...)."""
    return signature(ECHO, args=args, **options)


# The worker's own words for echo called with two arguments: echo("one", "two").
WRONG_ARGUMENTS = {
    "type": "TypeError",
    "message": "echo() takes 1 positional argument but 2 were given",
}


def echo_workflow(kind: str, text: str) -> Signature:
    """Workflows of echo: a chain passes the text along three links, a group
    echoes it four times side by side, a chord's body echoes the list of its
    three header tasks' results."""
    if kind == "chain":
        return chain(echo(text), echo(), echo())
    if kind == "group":
        return group(echo(text) for _ in range(4))
    assert kind == "chord"
    return chord(group(echo(text) for _ in range(3)), echo())


# Each echo workflow's result for "hi", and how many tasks it is made of.
ECHO_WORKFLOWS = {"chain": ("hi", 3), "group": (["hi"] * 4, 4), "chord": (["hi"] * 3, 4)}


async def submitted(
    client: AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> str:
    """The id of the task that the route's /async twin accepted (202) for the body."""
    response = await client.post(f"{path}/async", json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"{TASKS}/{response.json()['task_id']}"
    task_id: str = response.json()["task_id"]
    return task_id


async def assert_both_routes_give(
    client: AsyncClient,
    celery: Celery,
    headers: dict[str, str],
    path: str,
    body: dict[str, Any],
    result: object,
) -> None:
    """The route waits for its task and answers 200 with the result; its
    /async twin answers 202 at once, and GET /tasks/{task_id} tells the same
    result later. Delivered, each is forgotten by Redis; the record still
    answers the same."""
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 200
    waited = response.json()
    assert (waited["status"], waited["result"], waited["error"]) == ("SUCCESS", result, None)
    uuid.UUID(waited["task_id"])
    task_id = await submitted(client, headers, path, body)
    later = await poll(client, headers, task_id)
    assert (later["status"], later["result"], later["error"]) == ("SUCCESS", result, None)
    for reply in (waited, later):
        assert await forgotten(celery, reply["task_id"])
        again = await client.get(f"{TASKS}/{reply['task_id']}", headers=headers)
        assert again.json() == reply


@dataclass(frozen=True)
class NotFinite:
    """A body whose `field` is a number that JSON has no words for, as raw
    JSON text: Python's json module writes these, and some clients do too."""

    field: str
    number: str

    @property
    def content(self) -> bytes:
        return ('{"' + self.field + '": ' + self.number + "}").encode()


def not_finite(field: str) -> list[NotFinite]:
    return [NotFinite(field, number) for number in ("NaN", "Infinity", "-Infinity", "1e999")]


async def assert_refused_unsent(
    client: AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any] | NotFinite
) -> None:
    """422 for the body, before anything was recorded (or sent)."""
    if isinstance(body, NotFinite):
        response = await client.post(
            path, content=body.content, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] in (body.field, 0)
    else:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 422
    assert (await client.get(TASKS, headers=headers)).json()["total"] == 0


async def assert_dead_result_backend_is_503(
    settings: Settings, headers: dict[str, str], port: int, path: str, body: dict[str, Any]
) -> None:
    """With the result backend at a dead port, the route answers 503 at once,
    without blocking."""
    broken = settings.model_copy(
        update={"CELERY_RESULT_BACKEND_URL": f"redis://127.0.0.1:{port}/0"}
    )
    async with serving(create_app(broken)) as client:
        began = time.perf_counter()
        response = await client.post(path, json=body, headers=headers)
        elapsed = time.perf_counter() - began
    assert response.status_code == 503
    assert response.json() == {"detail": "The result backend is unavailable; try again later"}
    assert response.headers["Retry-After"] == "1"
    # Within a command's or a subscription's timeout (REDIS_TIMEOUT, 2 s), give
    # or take a busy test machine (3.07 s seen on two cores shared with a
    # compose boot); blocking would take the socket's default, minutes.
    assert elapsed < settings.REDIS_TIMEOUT + 2.0


async def poll(client: AsyncClient, headers: dict[str, str], task_id: object) -> dict[str, Any]:
    """GET the task until it is done."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while time.monotonic() < deadline:
        reply: dict[str, Any] = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
        if reply["status"] in FINAL:
            return reply
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} not done within {POLL_TIMEOUT}s")


async def status_of(client: AsyncClient, headers: dict[str, str], task_id: object) -> str:
    """The task's status, as GET /tasks/{task_id} tells it now."""
    status: str = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()["status"]
    return status


async def waited_task_id(client: AsyncClient, headers: dict[str, str]) -> str:
    """The id of the one task a waiting request sent (it is recorded before it is sent)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = (await client.get(TASKS, headers=headers)).json()["items"]
        if items:
            (item,) = items
            task_id: str = item["task_id"]
            return task_id
        await asyncio.sleep(0.02)
    raise AssertionError("the waiting request recorded no task")


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not within {seconds}s"
        await asyncio.sleep(0.02)


async def wait_for_state(
    celery: Celery, task_id: object, status: str, seconds: float = 10
) -> dict[str, Any]:
    """What a worker stored for the task, once it says `status`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        meta = stored_meta(celery, str(task_id))
        if meta is not None and meta["status"] == status:
            return meta
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {status}")


async def forgotten(celery: Celery, task_id: object) -> bool:
    """Whether Redis lets go of the result (it is deleted in the background)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if stored_meta(celery, str(task_id)) is None:
            return True
        await asyncio.sleep(0.02)
    return False


@contextmanager
def unserved_queue(celery: Celery) -> Iterator[str]:
    """A queue that no worker serves, deleted after the block: what is sent
    there waits, until a test starts a worker on it."""
    queue = f"test.unserved.{uuid.uuid4().hex[:12]}"
    declare_queue(celery, queue)
    try:
        yield queue
    finally:
        delete_queue(celery, queue)


@asynccontextmanager
async def unserved_app(
    settings: Settings, celery: Celery, **changes: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient, str]]:
    """An app, started, whose tasks go to a queue that no worker serves, with
    these settings changed; yields it, a client of it, and the queue."""
    with unserved_queue(celery) as queue:
        app = create_app(settings.model_copy(update={"CELERY_TASK_QUEUE": queue, **changes}))
        async with serving(app) as client:
            yield app, client, queue
