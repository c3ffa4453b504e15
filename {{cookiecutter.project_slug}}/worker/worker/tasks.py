"""Tasks of the worker. Each has an explicit name: producers send tasks by name."""

from worker.celery_app import celery_app
from worker.config import WORKER_NAME


@celery_app.task(name=f"{WORKER_NAME}.integer_multiplication")
def integer_multiplication(integer: int) -> int:
    """Double an integer: the smallest task that proves the round trip."""
    return integer * 2
