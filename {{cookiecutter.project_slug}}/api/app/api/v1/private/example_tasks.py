"""The example tasks: integer arithmetic, a long task that reports progress, and
Celery's workflows of them; docs/tasks.md tells what each answers, and how to take
them out."""

from celery import chain, chord, group, signature
from celery.canvas import Signature
from fastapi import APIRouter, Response, status
from fastapi.exceptions import RequestValidationError

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SettingsDep, TaskEngineDep
from app.api.v1.private.task_routes import SENDING, WAITING, accepted, task_routes
from app.core.config import WORKER_NAME, Settings
from app.schemas.example_task import IntegerIn, IntegersIn, LongRunningIn, WorkflowIn
from app.schemas.task import TaskAccepted
from taskengine import TaskReply

INTEGER_MULTIPLICATION = f"{WORKER_NAME}.integer_multiplication"
INTEGERS_SUM = f"{WORKER_NAME}.integers_sum"
LONG_RUNNING = f"{WORKER_NAME}.long_running"

router = APIRouter(prefix=API_V1_PREFIX)


def doubled(integer: int | None = None) -> Signature:
    """The worker's integer multiplication, of `integer` or of what the task before gave."""
    return signature(INTEGER_MULTIPLICATION, args=() if integer is None else (integer,))


@task_routes(router, "/tasks/integer-multiplication", summary="Double an integer")
def integer_multiplication(body: IntegerIn) -> Signature:
    return doubled(body.integer)


@task_routes(router, "/tasks/integers-sum", summary="Sum integers")
def integers_sum(body: IntegersIn) -> Signature:
    return signature(INTEGERS_SUM, args=(body.integers,))


@task_routes(router, "/workflows/chain", summary="Double `integer` `size` + 1 times in a chain")
def chain_workflow(body: WorkflowIn) -> Signature:
    return chain(doubled(body.integer), *(doubled() for _ in range(body.size)))


@task_routes(router, "/workflows/group", summary="Double `integer` `size` times in parallel")
def group_workflow(body: WorkflowIn) -> Signature:
    return group(doubled(body.integer) for _ in range(body.size))


@task_routes(
    router, "/workflows/chord", summary="Sum the parallel doublings of `integer`, `size` of them"
)
def chord_workflow(body: WorkflowIn) -> Signature:
    return chord(group_workflow(body), signature(INTEGERS_SUM))


# The long task by hand, to show what task_routes writes: it goes to the long
# tasks' queue, and its waiting route refuses a task that cannot end in time.
LONG_RUNNING_SUMMARY = "Work for `seconds`, reporting PROGRESS after each of `steps` steps"


def long_running_task(body: LongRunningIn, settings: Settings) -> Signature:
    queue = settings.CELERY_LONG_TASK_QUEUE
    return signature(LONG_RUNNING, args=(body.seconds, body.steps), queue=queue)


@router.post(
    "/tasks/long-running",
    summary=f"{LONG_RUNNING_SUMMARY}, and wait for the result",
    responses=WAITING,
)
async def long_running(
    body: LongRunningIn, user: CurrentUser, engine: TaskEngineDep, settings: SettingsDep
) -> TaskReply:
    if body.seconds >= settings.TASK_WAIT_TIMEOUT:
        message = (
            f"Cannot end within TASK_WAIT_TIMEOUT ({settings.TASK_WAIT_TIMEOUT:g}s):"
            " use this endpoint's /async twin"
        )
        raise RequestValidationError([{"type": "too_long", "loc": ["body"], "msg": message}])
    return await engine.wait(user.id, "long-running", long_running_task(body, settings))


@router.post(
    "/tasks/long-running/async",
    status_code=status.HTTP_202_ACCEPTED,
    summary=LONG_RUNNING_SUMMARY + "; GET /tasks/{task_id} for the result",
    responses=SENDING,
)
async def long_running_async(
    body: LongRunningIn,
    user: CurrentUser,
    engine: TaskEngineDep,
    settings: SettingsDep,
    response: Response,
) -> TaskAccepted:
    task_id = await engine.submit(user.id, "long-running", long_running_task(body, settings))
    return accepted(response, task_id)
