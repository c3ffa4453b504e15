"""Single tasks: wait for the result in the request, or get a task id and come
back for it. Every task is recorded with its owner; nobody else can see it."""

import uuid

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import func, select

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.models import TaskRecord, User
from app.schemas.page import Limit, Offset, Page
from app.schemas.task import (
    IntegerIn,
    IntegersIn,
    LongRunningIn,
    TaskAccepted,
    TaskReply,
    TaskSummary,
)
from app.services.tasks import FINAL

router = APIRouter(prefix=f"{API_V1_PREFIX}/tasks")

WAITING_RESPONSES: dict[int | str, dict[str, object]] = {
    500: {"description": "The task failed: its exception's type and message"},
    503: {"description": "The broker or the result backend is unavailable"},
    504: {"description": "No result within TASK_WAIT_TIMEOUT; the task was revoked"},
}


def accepted(response: Response, task_id: uuid.UUID) -> TaskAccepted:
    response.headers["Location"] = f"{router.prefix}/{task_id}"
    return TaskAccepted(task_id=task_id)


@router.post(
    "/integer-multiplication", summary="Double an integer and wait", responses=WAITING_RESPONSES
)
async def integer_multiplication(
    body: IntegerIn, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    return await runner.wait(
        session, user, "integer-multiplication", runner.catalog.integer_multiplication, body.integer
    )


@router.post(
    "/integer-multiplication/async",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Double an integer; poll GET /tasks/{task_id}",
)
async def integer_multiplication_async(
    body: IntegerIn,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    runner: TaskRunnerDep,
) -> TaskAccepted:
    task_id = await runner.submit(
        session, user, "integer-multiplication", runner.catalog.integer_multiplication, body.integer
    )
    return accepted(response, task_id)


@router.post("/integers-sum", summary="Sum integers and wait", responses=WAITING_RESPONSES)
async def integers_sum(
    body: IntegersIn, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    return await runner.wait(
        session, user, "integers-sum", runner.catalog.integers_sum, body.integers
    )


@router.post(
    "/integers-sum/async",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Sum integers; poll GET /tasks/{task_id}",
)
async def integers_sum_async(
    body: IntegersIn,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    runner: TaskRunnerDep,
) -> TaskAccepted:
    task_id = await runner.submit(
        session, user, "integers-sum", runner.catalog.integers_sum, body.integers
    )
    return accepted(response, task_id)


@router.post(
    "/long-running",
    summary="Work for `seconds`, reporting progress, and wait",
    responses=WAITING_RESPONSES,
)
async def long_running(
    body: LongRunningIn, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    build = runner.catalog.long_running
    return await runner.wait(session, user, "long-running", build, body.seconds, body.steps)


@router.post(
    "/long-running/async",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Work for `seconds`, reporting progress; poll GET /tasks/{task_id}",
)
async def long_running_async(
    body: LongRunningIn,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    runner: TaskRunnerDep,
) -> TaskAccepted:
    build = runner.catalog.long_running
    task_id = await runner.submit(session, user, "long-running", build, body.seconds, body.steps)
    return accepted(response, task_id)


@router.get("", summary="Your tasks, newest first, with their last seen state")
async def list_tasks(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> Page[TaskSummary]:
    own = TaskRecord.owner_id == user.id
    total = await session.scalar(select(func.count()).select_from(TaskRecord).where(own)) or 0
    tasks = await session.scalars(
        select(TaskRecord)
        .where(own)
        .order_by(TaskRecord.created_at.desc(), TaskRecord.id)
        .offset(offset)
        .limit(limit)
    )
    items = [
        TaskSummary(task_id=task.id, name=task.name, status=task.status, created_at=task.created_at)
        for task in tasks
    ]
    return Page(items=items, total=total, offset=offset, limit=limit)


async def get_own_task(session: SessionDep, user: User, task_id: uuid.UUID) -> TaskRecord:
    task = await session.scalar(
        select(TaskRecord).where(TaskRecord.id == task_id, TaskRecord.owner_id == user.id)
    )
    if task is None:  # someone else's task looks exactly like a missing one
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Task not found")
    return task


@router.get("/{task_id}", summary="A task's state, and its result once it is done")
async def read_task(
    task_id: uuid.UUID, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    return await runner.refresh(session, await get_own_task(session, user, task_id))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Revoke a task (and stop it if it runs); 409 once it is done",
)
async def revoke_task(
    task_id: uuid.UUID, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    task = await get_own_task(session, user, task_id)
    current = await runner.refresh(session, task)
    if current.status in FINAL:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=f"Task already {current.status}"
        )
    return await runner.revoke(session, task)
