"""Revoked tasks are dropped when they start, and long ones stop between steps.

The API revokes a task by writing a mark in Redis (api/taskengine/tracking.py),
not through Celery's revoke broadcast, which lives in the memory of the
workers that were up to hear it. Every task of this worker looks for the mark
before it runs: one Redis read per task (`make bench` measures it).
"""

import logging
from typing import Any

from celery import Task
from celery.exceptions import Ignore

logger = logging.getLogger(__name__)

# The API writes the same keys.
REVOKED_KEY_PREFIX = "celery-task-revoked-"


def is_revoked(task: Task) -> bool:
    try:
        return bool(task.backend.client.exists(REVOKED_KEY_PREFIX + task.request.id))
    except task.backend.connection_errors:
        # Redis is away: no revocation can be written meanwhile either, and
        # the task's result waits for Redis to come back.
        logger.warning("Cannot tell whether task %s was revoked; running it", task.request.id)
        return False


def stop_if_revoked(task: Task) -> None:
    """Store REVOKED and end the task here if its mark is there, as Celery
    does for a task revoked before it started."""
    if is_revoked(task):
        task.backend.mark_as_revoked(task.request.id, reason="revoked", request=task.request)
        raise Ignore()


class Revocable(Task):  # type: ignore[misc]
    """A task that does not run once revoked."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Not when called directly, in the caller's process (tests, scripts).
        if not self.request.called_directly:
            stop_if_revoked(self)
        return super().__call__(*args, **kwargs)
