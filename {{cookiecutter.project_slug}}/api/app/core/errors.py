"""Every error answer is JSON of one shape: {"detail": ...}.

FastAPI already answers HTTP errors so. This adds validation errors without
the input that failed (it may be a password or a token, and some inputs, such as
NaN, cannot even be encoded), and the unexpected errors, whose traceback goes to
the log and never to the client. The task routes add their own answers
(`app/api/v1/private/task_errors.py`).
"""

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core.db import DatabaseUnavailableError
from app.core.security import HashingBusyError

logger = logging.getLogger(__name__)


def error_answer(
    status_code: int, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error answer: {"detail": ...}."""
    return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with where and why each part of the request is wrong: type, loc, msg."""
    problems = [
        {"type": problem["type"], "loc": list(problem["loc"]), "msg": problem["msg"]}
        for problem in error.errors()
    ]
    return error_answer(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)


async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return error_answer(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error")


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("Database unavailable: %r", error.__cause__)
    return error_answer(
        status.HTTP_503_SERVICE_UNAVAILABLE, "The database is unavailable; try again later"
    )


async def hashing_busy(request: Request, error: Exception) -> JSONResponse:
    return error_answer(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "Too many password checks at once; try again later",
        headers={"Retry-After": "1"},
    )


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HashingBusyError, hashing_busy)
    app.add_exception_handler(DatabaseUnavailableError, database_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_error)
