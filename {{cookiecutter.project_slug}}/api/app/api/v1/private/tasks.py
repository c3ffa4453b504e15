"""Single tasks: wait for the result in the request, or get a task id and come
back for it. Every task is recorded with its owner; nobody else can see it."""

import uuid

from fastapi import APIRouter, HTTPException, status

from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.api.ownership import get_owned, owned_page
from app.api.v1.private.task_routes import TASKS_PATH, TaskEndpoint, add_task_routes
from app.core.producer.catalog import Catalog
from app.models import TaskRecord
from app.schemas.page import Limit, Offset, Page
from app.schemas.task import IntegerIn, IntegersIn, LongRunningIn, TaskReply, TaskSummary
from app.services.task_states import FINAL

router = APIRouter(prefix=TASKS_PATH)

TASK_ENDPOINTS = [
    TaskEndpoint(
        "/integer-multiplication", IntegerIn, Catalog.integer_multiplication, "Double an integer"
    ),
    TaskEndpoint("/integers-sum", IntegersIn, Catalog.integers_sum, "Sum integers"),
    TaskEndpoint(
        "/long-running",
        LongRunningIn,
        Catalog.long_running,
        "Work for `seconds`, reporting PROGRESS after each of `steps` steps",
    ),
]
add_task_routes(router, TASK_ENDPOINTS)


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


@router.get("/{task_id}", summary="A task's state, and its result once it is done")
async def read_task(
    task_id: uuid.UUID, session: SessionDep, user: CurrentUser, runner: TaskRunnerDep
) -> TaskReply:
    return await runner.refresh(
        session, await get_owned(session, TaskRecord, task_id, user, "Task")
    )


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Revoke a task (and stop it if it runs); 409 once it is done",
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
