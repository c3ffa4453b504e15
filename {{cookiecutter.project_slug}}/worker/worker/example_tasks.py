"""The example tasks: integer arithmetic, and a long task that reports its
progress. Delete this module, its line in celery_app.py's `include` and the
API's example routes to start from a clean slate."""

import time

from celery import Task

from worker.celery_app import celery_app
from worker.config import WORKER_NAME
from worker.revocations import stop_if_revoked
from worker.tasks import RetryTransientErrors

# Reported by long_running while it works; a producer can show the fraction done.
PROGRESS = "PROGRESS"


def integers(values: list[int]) -> list[int]:
    # bool is an int in Python, but True + True is no sum anyone asked for.
    if any(isinstance(value, bool) or not isinstance(value, int) for value in values):
        raise TypeError("expected a list of integers")
    return values


@celery_app.task(name=f"{WORKER_NAME}.integer_multiplication", base=RetryTransientErrors)
def integer_multiplication(integer: int) -> int:
    """Double an integer."""
    (value,) = integers([integer])
    return value * 2


@celery_app.task(name=f"{WORKER_NAME}.integers_sum", base=RetryTransientErrors)
def integers_sum(values: list[int]) -> int:
    """Sum integers; as a chord's body, it sums the results of the header."""
    return sum(integers(values))


@celery_app.task(name=f"{WORKER_NAME}.long_running", base=RetryTransientErrors, bind=True)
def long_running(self: Task, seconds: float, steps: int = 10) -> int:
    """Work for `seconds`, reporting PROGRESS after each of `steps` steps."""
    for done in range(1, steps + 1):
        time.sleep(seconds / steps)
        stop_if_revoked(self)
        self.update_state(state=PROGRESS, meta={"done": done, "total": steps})
    return steps
