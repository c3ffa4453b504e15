"""What the worker's tests of tasks share: sending a task by name and
forgetting its result after, waiting for a state, and cancelling as the API
does."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from worker.config import WORKER_NAME
from worker.revocations import REVOKED_KEY_PREFIX

RESULT_TIMEOUT = 10
ECHO = f"{WORKER_NAME}.echo"


@contextmanager
def sent(app: Celery, name: str, *args: Any, **options: Any) -> Iterator[AsyncResult]:
    """The task `name`, sent with these arguments (and send_task's options);
    its result is forgotten after the block."""
    result = app.send_task(name, args=args, **options)
    try:
        yield result
    finally:
        forget_all(result)


def forget_all(result: Any) -> None:
    """Forget a result, its group members and its parents (chain, chord)."""
    while result is not None:
        for member in getattr(result, "results", None) or [result]:
            member.forget()
        result = result.parent


def wait_for(result: Any, states: set[str], seconds: float = RESULT_TIMEOUT) -> str:
    deadline = time.monotonic() + seconds
    while result.state not in states:
        assert time.monotonic() < deadline, f"{result.id} stayed {result.state}"
        time.sleep(0.02)
    return str(result.state)


def revoke(celery_app: Celery, task_id: str) -> None:
    """As the API cancels a task (api/taskengine/tracking.py)."""
    celery_app.backend.client.set(REVOKED_KEY_PREFIX + task_id, 1, ex=60)
