"""Tasks of the worker. Each has an explicit name: producers send tasks by name,
and the name must not change when a function is renamed or moved."""

from worker.celery_app import celery_app
from worker.config import WORKER_NAME
from worker.revocations import Revocable


class RetryTransientErrors(Revocable):
    """Retry only what may succeed later (a lost connection, a timeout), with
    exponential backoff and jitter; a bug or bad input fails at once. Dropped
    once revoked, like every task here."""

    autoretry_for = (ConnectionError, TimeoutError)
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5


@celery_app.task(name=f"{WORKER_NAME}.echo", base=RetryTransientErrors)
def echo(text: str) -> str:
    """The text back: the smallest task that proves the whole round trip."""
    return text
