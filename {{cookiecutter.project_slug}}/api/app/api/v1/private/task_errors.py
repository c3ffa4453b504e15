"""How the task and workflow routes answer when a task cannot be run or awaited.

Next to the routes that raise these errors, so the core layer below knows
nothing of the services that define some of them.
"""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from app.core.errors import error_answer
from app.core.producer.errors import BrokerUnavailableError, ResultBackendUnavailableError
from app.services.in_flight import TooManyTasksError
from app.services.tasks import TaskFailedError, TaskTimeoutError


async def broker_unavailable(request: Request, error: Exception) -> JSONResponse:
    return error_answer(
        status.HTTP_503_SERVICE_UNAVAILABLE, "The task broker is unavailable; try again later"
    )


async def results_unavailable(request: Request, error: Exception) -> JSONResponse:
    return error_answer(
        status.HTTP_503_SERVICE_UNAVAILABLE, "The result backend is unavailable; try again later"
    )


async def too_many_tasks(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TooManyTasksError)
    return error_answer(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"You have {error.limit} tasks in flight (TASKS_IN_FLIGHT_PER_USER): wait for some to end",
        headers={"Retry-After": "1"},
    )


async def task_timed_out(request: Request, error: Exception) -> JSONResponse:
    return error_answer(status.HTTP_504_GATEWAY_TIMEOUT, str(error))


async def task_failed(request: Request, error: Exception) -> JSONResponse:
    """500 for a task that raised, 409 for one revoked while it was awaited."""
    assert isinstance(error, TaskFailedError)
    failed = error.reply.status == "FAILURE"
    return error_answer(
        status.HTTP_500_INTERNAL_SERVER_ERROR if failed else status.HTTP_409_CONFLICT,
        error.reply.model_dump(mode="json"),
    )


def add_task_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BrokerUnavailableError, broker_unavailable)
    app.add_exception_handler(ResultBackendUnavailableError, results_unavailable)
    app.add_exception_handler(TaskTimeoutError, task_timed_out)
    app.add_exception_handler(TooManyTasksError, too_many_tasks)
    app.add_exception_handler(TaskFailedError, task_failed)
