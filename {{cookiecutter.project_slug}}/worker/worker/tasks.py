"""Tasks of the worker. Each has an explicit name: producers send tasks by name,
and the name must not change when a function is renamed or moved."""

import time

from celery import Task

from worker.celery_app import celery_app
from worker.config import WORKER_NAME
from worker.revocations import Revocable, stop_if_revoked

# Reported by long_running while it works; a producer can show the fraction done.
PROGRESS = "PROGRESS"


class RetryTransientErrors(Revocable):
    """Retry only what may succeed later (a lost connection, a timeout), with
    exponential backoff and jitter; a bug or bad input fails at once. Dropped
    once revoked, like every task here."""

    autoretry_for = (ConnectionError, TimeoutError)
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5


def integers(values: list[int]) -> list[int]:
    # bool is an int in Python, but True + True is no sum anyone asked for.
    if any(isinstance(value, bool) or not isinstance(value, int) for value in values):
        raise TypeError("expected a list of integers")
    return values


@celery_app.task(name=f"{WORKER_NAME}.integer_multiplication", base=RetryTransientErrors)
def integer_multiplication(integer: int) -> int:
    """Double an integer: the smallest task that proves the round trip."""
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
