"""Your tasks: send the echo task, list them, read one, cancel one. Nobody else
sees them (another user's task answers 404, like an unknown one). The worker's
tasks are known by name only: the API never imports worker code."""

import uuid

from celery import signature
from celery.canvas import Signature
from fastapi import APIRouter, status

from app.api.deps import CurrentUser, TaskEngineDep
from app.api.responses import NOT_FOUND, error
from app.api.v1.private.task_routes import ASYNC_SUFFIX, TASKS_PATH, task_routes
from app.core.config import WORKER_NAME
from app.schemas.page import Limit, Offset, Page
from app.schemas.task import EchoIn
from taskengine import TaskReply, TaskSummary

# The smallest task that proves the whole path: API, broker, worker, results.
# Its name and its routes' paths: tests and benchmarks read them here.
ECHO = f"{WORKER_NAME}.echo"
ECHO_ROUTE = "/echo"
ECHO_PATH = TASKS_PATH + ECHO_ROUTE
ECHO_ASYNC_PATH = ECHO_PATH + ASYNC_SUFFIX

router = APIRouter(prefix=TASKS_PATH)


@task_routes(router, ECHO_ROUTE, summary="Send `text` through a worker and back")
def echo(body: EchoIn) -> Signature:
    return signature(ECHO, args=(body.text,))


@router.get("", summary="Your tasks, newest first, with their last seen state")
async def list_tasks(
    user: CurrentUser, engine: TaskEngineDep, offset: Offset = 0, limit: Limit = 50
) -> Page[TaskSummary]:
    total, tasks = await engine.tasks(user.id, offset, limit)
    return Page(items=tasks, total=total, offset=offset, limit=limit)


@router.get(
    "/{task_id:uuid}",
    summary="A task's state, and its result once it is done",
    responses={**NOT_FOUND, 503: error("The result backend is unavailable")},
)
async def read_task(task_id: uuid.UUID, user: CurrentUser, engine: TaskEngineDep) -> TaskReply:
    return await engine.status(user.id, task_id)


@router.delete(
    "/{task_id:uuid}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a task; 409 once it is done",
    description=(
        "No task of it starts from now on, and a long one stops between its steps."
        " The answer is its state now: REVOKED, or, while one of its tasks runs,"
        " that task's state; GET tells how it ended."
    ),
    responses={
        **NOT_FOUND,
        409: error("The task is already done"),
        503: error("The result backend is unavailable"),
    },
)
async def cancel_task(task_id: uuid.UUID, user: CurrentUser, engine: TaskEngineDep) -> TaskReply:
    return await engine.cancel(user.id, task_id)
