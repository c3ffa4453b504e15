"""Revoked tasks are dropped when they start, and long ones stop between steps.

The API revokes a task by writing a mark in Redis (api/taskengine/tracking.py),
not through Celery's revoke broadcast, which lives in the memory of the
workers that were up to hear it. Every task of this worker stores STARTED,
then looks for the mark, before it runs: one Redis round trip for both, where
Celery's `task_track_started` took two for the state alone (`make bench`
measures it). The order is what makes a cancel safe: the API writes the mark,
then reads the state, so one of the two always sees the other; and a task
runs only once its STARTED is stored.

Tasks that ended are not run again either: a message delivered again after
its task's end (its acknowledgement lost with a broker node) finds the end,
or the worker's mark of it, in the same round trip.
"""

import logging
import os
from typing import Any

from celery import Task, states
from celery.exceptions import BackendStoreError, Ignore, Reject

logger = logging.getLogger(__name__)

# The API writes the same keys.
REVOKED_KEY_PREFIX = "celery-task-revoked-"
# Written by the worker when a task ends, and kept for ENDED_KEPT seconds: a
# message whose acknowledgement was lost (with its worker's broker node) comes
# back seconds later, once RabbitMQ finds the node gone, when the API may have
# moved the stored end to the task's record already.
ENDED_KEY_PREFIX = "celery-task-ended-"
ENDED_KEPT = 300


def started_unless_revoked(task: Task) -> bool:
    """Store STARTED for the task, then tell whether its mark is there. Raises
    Ignore, leaving the stored end, when an earlier delivery of its message
    ended it: its worker, or the broker node it was connected to, was lost
    before RabbitMQ had the acknowledgement, and the task must not run twice."""
    backend, request = task.backend, task.request
    revoked_key = REVOKED_KEY_PREFIX + request.id
    if task.ignore_result:  # nothing of it is stored, STARTED neither
        return is_revoked(task)
    try:
        earlier, ended, revoked = backend.ensure(store_started_then_look, (task, revoked_key))
        if earlier is not None and backend.decode_result(earlier)["status"] in states.READY_STATES:
            ended = True
        if ended:
            put_back(task, earlier)
            logger.info("Task %s ended on an earlier delivery: not run again", request.id)
            raise Ignore()
    except (BackendStoreError, *backend.connection_errors) as error:
        # Without STARTED stored, a cancel could not tell that this task runs:
        # it waits in the queue until Redis answers again, instead.
        logger.warning("Cannot store that task %s started; back to the queue", request.id)
        raise Reject(repr(error), requeue=True) from error
    # STARTED is stored: a cancel now sees the task running, so running it is
    # safe even when the mark cannot be read.
    return bool(revoked)


def store_started_then_look(task: Task, revoked_key: str) -> tuple[bytes | None, int, int]:
    """What was stored, whether an earlier delivery ended the task, STARTED as
    Celery stores it (and publishes it to whoever follows the task), then the
    mark's presence, in one pipeline: Redis runs them in order. A message is
    rarely delivered again after its end: what STARTED replaced is put back
    then (put_back), which costs nothing to every other task."""
    backend, request = task.backend, task.request
    meta = {
        "status": states.STARTED,
        "result": running_on(task),
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": request.id,
    }
    if request.group:
        meta["group_id"] = request.group
    if request.parent_id:
        meta["parent_id"] = request.parent_id
    value = backend.encode(meta)
    key = backend.get_key_for_task(request.id)
    with backend.client.pipeline(transaction=False) as pipeline:
        pipeline.get(key)
        pipeline.exists(ENDED_KEY_PREFIX + request.id)
        pipeline.set(key, value, ex=backend.expires or None)
        pipeline.publish(key, value)
        pipeline.exists(revoked_key)
        earlier, ended, _, _, revoked = pipeline.execute()
        return earlier, int(ended), int(revoked)


def put_back(task: Task, earlier: bytes | None) -> None:
    """The stored end STARTED replaced; none if the API had already moved it."""
    backend = task.backend
    key = backend.get_key_for_task(task.request.id)
    if earlier is None:
        backend.client.delete(key)
    else:
        backend.client.set(key, earlier, ex=backend.expires or None)


def remember_the_end(task: Task, task_id: str) -> None:
    try:
        task.backend.client.set(ENDED_KEY_PREFIX + task_id, 1, ex=ENDED_KEPT)
    except task.backend.connection_errors:
        logger.warning("Cannot keep that task %s ended: a delivery again would run it", task_id)


def running_on(task: Task) -> dict[str, Any]:
    """What Celery's own STARTED carries."""
    return {"pid": os.getpid(), "hostname": task.request.hostname}


def is_revoked(task: Task) -> bool:
    """Whether the task's mark is there: one Redis read."""
    try:
        return bool(task.backend.client.exists(REVOKED_KEY_PREFIX + task.request.id))
    except task.backend.connection_errors:
        logger.warning("Cannot tell whether task %s was revoked; running it", task.request.id)
        return False


def stop_if_revoked(task: Task) -> None:
    """Between the steps of a long task: end it here if its mark is there."""
    if is_revoked(task):
        stop(task)


def stop(task: Task) -> None:
    """Store REVOKED and end the task, as Celery does for a task revoked before it started."""
    task.backend.mark_as_revoked(task.request.id, reason="revoked", request=task.request)
    raise Ignore()


class Revocable(Task):  # type: ignore[misc]
    """A task that stores STARTED when it starts, does not run once revoked,
    and does not run again once an earlier delivery ended it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Not when called in the caller's process (directly, or eagerly in tests).
        request = self.request
        if not (request.called_directly or request.is_eager) and started_unless_revoked(self):
            stop(self)
        return super().__call__(*args, **kwargs)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """After its end is stored, before its message is acknowledged. (A
        task whose result is ignored stores nothing at its start to find it.)"""
        if status in states.READY_STATES and not (self.request.is_eager or self.ignore_result):
            remember_the_end(self, task_id)
