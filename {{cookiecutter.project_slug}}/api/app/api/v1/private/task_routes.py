"""Task endpoints, declared in a table (task_endpoints.py): each entry makes two routes.

`POST path` waits for the result in the request; `POST path/async` answers 202
with a task id to come back with (and a Location header). Adding an endpoint is
one TaskEndpoint in the table plus the Catalog method it names.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.canvas import Signature
from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.core.producer.catalog import Catalog
from app.schemas.task import TaskAccepted, TaskReply
from app.services.tasks import SignatureBuilder

TASKS_PATH = f"{API_V1_PREFIX}/tasks"

WAITING_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "The task was revoked while the request waited"},
    500: {"description": "The task failed: its exception's type and message"},
    503: {"description": "The broker or the result backend is unavailable"},
    504: {"description": "No result within TASK_WAIT_TIMEOUT; the task was revoked"},
}


@dataclass(frozen=True)
class TaskEndpoint:
    # Under the router's prefix; its last segment is the name kept with each task.
    path: str
    # The request body; its fields are the keyword arguments of `signature`.
    body: type[BaseModel]
    # The Catalog method that builds what is sent, e.g. Catalog.integer_multiplication.
    signature: Callable[..., Signature]
    summary: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def builder(self, catalog: Catalog, body: BaseModel) -> SignatureBuilder:
        def build(expires: datetime) -> Signature:
            return self.signature(catalog, **body.model_dump(), expires=expires)

        return build


def add_task_routes(router: APIRouter, endpoints: Sequence[TaskEndpoint]) -> None:
    for endpoint in endpoints:
        add_waiting_route(router, endpoint)
        add_async_route(router, endpoint)


def add_waiting_route(router: APIRouter, endpoint: TaskEndpoint) -> None:
    # FastAPI reads the body's model from the annotation, so it names the
    # endpoint's model, which mypy cannot see as a type.
    async def wait(
        body: endpoint.body,  # type: ignore[name-defined]
        session: SessionDep,
        user: CurrentUser,
        runner: TaskRunnerDep,
    ) -> TaskReply:
        build = endpoint.builder(runner.catalog, body)
        return await runner.wait(session, user, endpoint.name, build)

    router.add_api_route(
        endpoint.path,
        wait,
        methods=["POST"],
        name=f"{endpoint.name}-wait",
        summary=f"{endpoint.summary}, and wait for the result",
        responses=WAITING_RESPONSES,
    )


def add_async_route(router: APIRouter, endpoint: TaskEndpoint) -> None:
    async def start(
        body: endpoint.body,  # type: ignore[name-defined]
        response: Response,
        session: SessionDep,
        user: CurrentUser,
        runner: TaskRunnerDep,
    ) -> TaskAccepted:
        build = endpoint.builder(runner.catalog, body)
        task_id = await runner.submit(session, user, endpoint.name, build)
        return accepted(response, task_id)

    router.add_api_route(
        f"{endpoint.path}/async",
        start,
        methods=["POST"],
        name=f"{endpoint.name}-async",
        status_code=status.HTTP_202_ACCEPTED,
        summary=endpoint.summary + "; GET /tasks/{task_id} for the result",
    )


def accepted(response: Response, task_id: uuid.UUID) -> TaskAccepted:
    response.headers["Location"] = f"{TASKS_PATH}/{task_id}"
    return TaskAccepted(task_id=task_id)
