"""`@task_routes(router, "/echo", summary=...)` on a function that turns a
request body (the model its parameter is annotated with) into a Celery signature
gives two routes: `POST path` sends the task and waits for its result; `POST
path/async` answers 202 with the task's id, and a Location header. The path's
last segment names the task in its record."""

import inspect
import uuid
from collections.abc import Callable
from typing import TypeVar, get_type_hints

from celery.canvas import Signature
from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, TaskEngineDep
from app.api.responses import Responses, error
from app.schemas.task import TaskAccepted
from taskengine import TaskReply

TASKS_PATH = f"{API_V1_PREFIX}/tasks"
# After a task's path: the route that answers 202 at once.
ASYNC_SUFFIX = "/async"

Body = TypeVar("Body", bound=BaseModel)
Build = Callable[[Body], Signature]

SENDING: Responses = {
    429: error("TASKS_IN_FLIGHT_PER_USER tasks of yours are in flight already"),
    503: error("The broker, the result backend or the database is unavailable"),
}
WAITING: Responses = {
    **SENDING,
    409: error("The task was cancelled while the request waited"),
    500: error("The task failed: its exception's type and message"),
    504: error("No result within TASK_WAIT_TIMEOUT; the task was cancelled"),
}


def accepted(response: Response, task_id: uuid.UUID) -> TaskAccepted:
    response.headers["Location"] = f"{TASKS_PATH}/{task_id}"
    return TaskAccepted(task_id=task_id)


def task_routes(
    router: APIRouter, path: str, *, summary: str
) -> Callable[[Build[Body]], Build[Body]]:
    def add(build: Build[Body]) -> Build[Body]:
        name = path.rsplit("/", 1)[-1]
        (parameter,) = inspect.signature(build).parameters
        body_model = get_type_hints(build)[parameter]

        async def wait(body: Body, user: CurrentUser, engine: TaskEngineDep) -> TaskReply:
            return await engine.wait(user.id, name, build(body))

        async def start(
            body: Body, user: CurrentUser, engine: TaskEngineDep, response: Response
        ) -> TaskAccepted:
            return accepted(response, await engine.submit(user.id, name, build(body)))

        # FastAPI reads the body's model from the annotation.
        wait.__annotations__["body"] = start.__annotations__["body"] = body_model
        waiting = f"{summary}, and wait for the result"
        router.post(path, name=f"{name}-wait", summary=waiting, responses=WAITING)(wait)
        router.post(
            path + ASYNC_SUFFIX,
            name=f"{name}-async",
            status_code=status.HTTP_202_ACCEPTED,
            summary=summary + "; GET /tasks/{task_id} for the result",
            responses=SENDING,
        )(start)
        return build

    return add
