"""Each task endpoint comes as twins: one waits for the result in the request,
the other (`/async`) answers 202 with a task id to come back with."""

import uuid
from collections.abc import Callable
from typing import Any, cast

from celery.canvas import Signature
from fastapi import APIRouter, Response, status

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.core.celery.catalog import Catalog
from app.schemas.task import TaskAccepted, TaskBody, TaskReply

TASKS_PATH = f"{API_V1_PREFIX}/tasks"

WAITING_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "The task was revoked while the request waited"},
    500: {"description": "The task failed: its exception's type and message"},
    503: {"description": "The broker or the result backend is unavailable"},
    504: {"description": "No result within TASK_WAIT_TIMEOUT; the task was revoked"},
}

# Picks the catalog entry that builds a task's signature.
Builder = Callable[[Catalog], Callable[..., Signature]]


def add_twins(
    router: APIRouter,
    path: str,
    name: str,
    body_type: type[TaskBody],
    builder: Builder,
    summary: str,
) -> None:
    """Add `POST path` (waits) and `POST path/async` (202) to the router."""

    async def wait(
        body: body_type,  # type: ignore[valid-type]
        session: SessionDep,
        user: CurrentUser,
        runner: TaskRunnerDep,
    ) -> TaskReply:
        build = builder(runner.catalog)
        return await runner.wait(session, user, name, build, *cast(TaskBody, body).arguments())

    async def start(
        body: body_type,  # type: ignore[valid-type]
        response: Response,
        session: SessionDep,
        user: CurrentUser,
        runner: TaskRunnerDep,
    ) -> TaskAccepted:
        build = builder(runner.catalog)
        task_id = await runner.submit(session, user, name, build, *cast(TaskBody, body).arguments())
        return accepted(response, task_id)

    router.add_api_route(
        path,
        wait,
        methods=["POST"],
        name=f"{name}-wait",
        summary=f"{summary}, and wait for the result",
        responses=WAITING_RESPONSES,
    )
    router.add_api_route(
        f"{path}/async",
        start,
        methods=["POST"],
        name=f"{name}-async",
        status_code=status.HTTP_202_ACCEPTED,
        summary=summary + "; GET /tasks/{task_id} for the result",
    )


def accepted(response: Response, task_id: uuid.UUID) -> TaskAccepted:
    response.headers["Location"] = f"{TASKS_PATH}/{task_id}"
    return TaskAccepted(task_id=task_id)
