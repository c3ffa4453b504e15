"""Every error answer is JSON of one shape: {"detail": ...}.

FastAPI already answers HTTP and validation errors so; this adds the unexpected
ones, whose traceback goes to the log and never to the client. The task routes
add their own answers (`app/api/v1/private/task_errors.py`).
"""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)


async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "Internal server error"},
    )


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, unexpected_error)
