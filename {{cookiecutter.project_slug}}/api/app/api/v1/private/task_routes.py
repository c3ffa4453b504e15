"""Task endpoints, declared in a table (task_endpoints.py): each entry makes two routes.

`POST path` waits for the result in the request; `POST path/async` answers 202
with a task id to come back with (and a Location header). Adding an endpoint is
one TaskEndpoint in the table plus the Catalog method it names.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from celery.canvas import Signature
from fastapi import APIRouter, Depends, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, TaskRunnerDep
from app.api.responses import Responses, error
from app.core.producer.catalog import Catalog
from app.schemas.task import TakesTime, TaskAccepted, TaskReply
from app.services.account_cache import Account
from app.services.tasks import SignatureBuilder, TaskRunner

TASKS_PATH = f"{API_V1_PREFIX}/tasks"

SENDING: Responses = {
    429: error("TASKS_IN_FLIGHT_PER_USER tasks of yours are in flight already"),
    503: error("The broker or the result backend is unavailable"),
}
WAITING_RESPONSES: Responses = {
    **SENDING,
    409: error("The task was revoked while the request waited"),
    500: error("The task failed: its exception's type and message"),
    504: error("No result within TASK_WAIT_TIMEOUT; the task was revoked"),
}


@dataclass(frozen=True)
class TaskEndpoint:
    # Under the router's prefix; its last segment is the name kept with each task.
    path: str
    # The request body; its fields are the keyword arguments of `catalog_method`.
    body: type[BaseModel]
    # The Catalog method that builds what is sent, e.g. Catalog.integer_multiplication.
    catalog_method: Callable[..., Signature]
    summary: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def builder(self, catalog: Catalog, body: BaseModel) -> SignatureBuilder:
        def build(expires: datetime) -> Signature:
            return self.catalog_method(catalog, **body.model_dump(), expires=expires)

        return build


@dataclass
class TaskRequest:
    """A request to one endpoint of the table, its body turned into a builder."""

    name: str
    build: SignatureBuilder
    user: Account
    runner: TaskRunner
    # The task cannot end sooner (TakesTime bodies; 0 for the others).
    least_seconds: float = 0

    def refuse_unless_it_can_end_within(self, seconds: float) -> None:
        """422 for a task that is sure to outlast a wait of `seconds`: it
        would only time out and be revoked."""
        if self.least_seconds >= seconds:
            message = (
                f"Cannot end within TASK_WAIT_TIMEOUT ({seconds:g}s):"
                " use this endpoint's /async twin"
            )
            raise RequestValidationError([{"type": "too_long", "loc": ["body"], "msg": message}])


def parse_request(endpoint: TaskEndpoint) -> Callable[..., Awaitable[TaskRequest]]:
    """The dependency that reads a request to this endpoint (async: FastAPI
    would run a plain function in its thread pool, on every task request)."""

    # FastAPI reads the body's model from the annotation: the endpoint's own,
    # which mypy cannot see as a type.
    async def task_request(
        body: endpoint.body,  # type: ignore[name-defined]
        user: CurrentUser,
        runner: TaskRunnerDep,
    ) -> TaskRequest:
        build = endpoint.builder(runner.catalog, body)
        least_seconds = body.least_seconds() if isinstance(body, TakesTime) else 0
        return TaskRequest(endpoint.name, build, user, runner, least_seconds)

    return task_request


def add_task_routes(router: APIRouter, endpoints: Sequence[TaskEndpoint]) -> None:
    for endpoint in endpoints:
        parsed = Depends(parse_request(endpoint))
        router.add_api_route(
            endpoint.path,
            waiting_route(parsed),
            methods=["POST"],
            name=f"{endpoint.name}-wait",
            summary=f"{endpoint.summary}, and wait for the result",
            responses=WAITING_RESPONSES,
        )
        router.add_api_route(
            f"{endpoint.path}/async",
            async_route(parsed),
            methods=["POST"],
            name=f"{endpoint.name}-async",
            status_code=status.HTTP_202_ACCEPTED,
            summary=endpoint.summary + "; GET /tasks/{task_id} for the result",
            responses=SENDING,
        )


# `parsed`: the Depends() marker of the endpoint's parse_request.
def waiting_route(parsed: Any) -> Callable[..., Awaitable[TaskReply]]:
    async def wait(task: Annotated[TaskRequest, parsed]) -> TaskReply:
        task.refuse_unless_it_can_end_within(task.runner.wait_timeout)
        return await task.runner.wait(task.user, task.name, task.build)

    return wait


def async_route(parsed: Any) -> Callable[..., Awaitable[TaskAccepted]]:
    async def start(task: Annotated[TaskRequest, parsed], response: Response) -> TaskAccepted:
        task_id = await task.runner.submit(task.user, task.name, task.build)
        return accepted(response, task_id)

    return start


def accepted(response: Response, task_id: uuid.UUID) -> TaskAccepted:
    response.headers["Location"] = f"{TASKS_PATH}/{task_id}"
    return TaskAccepted(task_id=task_id)
