"""The tasks you sent: list them, read one's state and result, revoke one.
Every task is recorded with its owner; nobody else can see it. The endpoints
that send tasks are in task_endpoints.py."""

import uuid

from fastapi import APIRouter, HTTPException, status

from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.api.ownership import get_owned, owned_page
from app.api.responses import NOT_FOUND, error
from app.api.v1.private.task_routes import TASKS_PATH
from app.models import TaskRecord
from app.schemas.page import Limit, Offset, Page
from app.schemas.task import TaskReply, TaskSummary
from app.services.task_states import FINAL

router = APIRouter(prefix=TASKS_PATH)


@router.get("", summary="Your tasks, newest first, with their last seen state")
async def list_tasks(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> Page[TaskSummary]:
    total, tasks = await owned_page(session, TaskRecord, user, offset, limit)
    items = [
        TaskSummary(task_id=task.id, name=task.name, status=task.status, created_at=task.created_at)
        for task in tasks
    ]
    return Page(items=items, total=total, offset=offset, limit=limit)


@router.get(
    "/{task_id:uuid}",
    summary="A task's state, and its result once it is done",
    responses={**NOT_FOUND, 503: error("The result backend is unavailable")},
)
async def read_task(
    task_id: uuid.UUID, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    return await runner.refresh(
        session, await get_owned(session, TaskRecord, task_id, user, "Task")
    )


@router.delete(
    "/{task_id:uuid}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Revoke a task; 409 once it is done",
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
async def revoke_task(
    task_id: uuid.UUID, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    task = await get_owned(session, TaskRecord, task_id, user, "Task")
    current = await runner.refresh(session, task)
    if current.status in FINAL:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=f"Task already {current.status}"
        )
    return await runner.revoke(session, task)
