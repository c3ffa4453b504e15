"""Every error answer is {"detail": ...}, as FastAPI's HTTP errors are: also the
validation errors, without the input that failed (a password or a token, maybe,
or NaN, which cannot be encoded), what the task engine raises, and unexpected
errors, whose traceback goes to the log and never to the client."""

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core.db import DatabaseUnavailableError
from app.core.security import HashingBusyError
from taskengine import (
    BrokerUnavailableError,
    PostgresUnavailableError,
    RedisUnavailableError,
    TaskEndedError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    TooManyTasksError,
)

logger = logging.getLogger(__name__)

TASK_ERRORS: tuple[type[Exception], ...] = (
    TaskNotFoundError,
    TaskEndedError,
    TooManyTasksError,
    TaskTimeoutError,
    TaskFailedError,
)
TRY_AGAIN_LATER: dict[type[Exception], str] = {
    DatabaseUnavailableError: "The database is unavailable; try again later",
    PostgresUnavailableError: "The database is unavailable; try again later",
    BrokerUnavailableError: "The task broker is unavailable; try again later",
    RedisUnavailableError: "The result backend is unavailable; try again later",
    HashingBusyError: "Too many password checks at once; try again later",
}


def error_answer(code: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of every error answer: {"detail": ...}."""
    return JSONResponse(status_code=code, content={"detail": detail}, headers=headers)


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """422 with where and why each part of the request is wrong: type, loc, msg."""
    assert isinstance(error, RequestValidationError)
    problems = [
        {"type": problem["type"], "loc": list(problem["loc"]), "msg": problem["msg"]}
        for problem in error.errors()
    ]
    return error_answer(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)


async def unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("%s: %r", type(error).__name__, error.__cause__ or error)
    detail = TRY_AGAIN_LATER[type(error)]
    return error_answer(status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers={"Retry-After": "1"})


async def task_error(request: Request, error: Exception) -> JSONResponse:
    """What the task engine raises about a task, as the task routes document it."""
    if isinstance(error, TaskNotFoundError):
        return error_answer(status.HTTP_404_NOT_FOUND, "Task not found")
    if isinstance(error, TaskEndedError):
        return error_answer(status.HTTP_409_CONFLICT, f"Task already {error.reply.status}")
    if isinstance(error, TooManyTasksError):
        return error_answer(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"You have {error.limit} tasks in flight (TASKS_IN_FLIGHT_PER_USER): wait for some to end",
            headers={"Retry-After": "1"},
        )
    if isinstance(error, TaskTimeoutError):
        return error_answer(status.HTTP_504_GATEWAY_TIMEOUT, str(error))
    assert isinstance(error, TaskFailedError)
    # 500 for a task that raised, 409 for one cancelled while it was awaited.
    failed = error.reply.status == "FAILURE"
    code = status.HTTP_500_INTERNAL_SERVER_ERROR if failed else status.HTTP_409_CONFLICT
    return error_answer(code, error.reply.model_dump(mode="json"))


async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return error_answer(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid_request)
    for error in TRY_AGAIN_LATER:
        app.add_exception_handler(error, unavailable)
    for error in TASK_ERRORS:
        app.add_exception_handler(error, task_error)
    app.add_exception_handler(Exception, unexpected_error)
