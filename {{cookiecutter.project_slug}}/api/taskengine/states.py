"""What the engine answers about a task (bodies a service returns as they are),
and the pure rules that make one reply of what Celery stored for its tasks."""

import uuid
from datetime import datetime
from typing import Any

from celery import states
from pydantic import BaseModel
from pydantic_core import to_jsonable_python


class TaskError(BaseModel):
    """The exception a task raised, by type and message; never its traceback."""

    type: str
    message: str


class TaskReply(BaseModel):
    task_id: uuid.UUID
    # PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, REVOKED or LOST
    status: str
    # The value once SUCCESS (a list for a group), progress while PROGRESS.
    result: Any = None
    error: TaskError | None = None


class TaskSummary(BaseModel):
    task_id: uuid.UUID
    # What was asked for, as the service named it when it sent the task.
    name: str
    status: str
    created_at: datetime


Meta = dict[str, Any]  # what Celery stores for a task: status, result, traceback...

# Reported by a task while it works, with {"done", "total"}; a workflow reports
# it too, as its members finished over all of them.
PROGRESS = "PROGRESS"
# Decided by the engine, never stored by a worker: nobody will ever tell how
# this task ended (see verdict()).
LOST = "LOST"
FINAL = frozenset(states.READY_STATES | {LOST})
# How far along an unfinished state is: a group reports its least advanced member.
RANKS = {states.PENDING: 0, states.RECEIVED: 1, states.STARTED: 2, states.RETRY: 2, PROGRESS: 3}
# A worker runs the task now, and will store how it ends.
RUNNING = frozenset((states.STARTED, PROGRESS))


def jsonable(value: object) -> Any:
    """A result as JSON can carry it (pickle results may hold any object)."""
    return to_jsonable_python(value, fallback=repr)


def combine(task_id: uuid.UUID, metas: list[Meta | None], is_group: bool) -> TaskReply:
    """One reply for the tasks that make an answer (None: nothing stored yet). A
    failure wins, then a revocation; then a task not seen yet keeps it PENDING;
    a group succeeds when all its members did, until then its least advanced
    member's state is its own."""
    present = [meta for meta in metas if meta is not None]
    failed = next((meta for meta in present if meta["status"] == states.FAILURE), None)
    if failed is not None:
        error = failed["result"]
        described = TaskError(type=type(error).__name__, message=str(error))
        return TaskReply(task_id=task_id, status=states.FAILURE, error=described)
    revoked = next((meta for meta in present if meta["status"] == states.REVOKED), None)
    if revoked is not None:
        # Why, where the worker said it: TaskRevokedError("expired in the queue...").
        reason = str(revoked["result"] or "")
        why = TaskError(type=type(revoked["result"]).__name__, message=reason) if reason else None
        return TaskReply(task_id=task_id, status=states.REVOKED, error=why)
    if len(present) < len(metas):
        return TaskReply(task_id=task_id, status=states.PENDING)
    if all(meta["status"] == states.SUCCESS for meta in present):
        values = [jsonable(meta["result"]) for meta in present]
        result = values if is_group else values[0]
        return TaskReply(task_id=task_id, status=states.SUCCESS, result=result)
    unfinished = [meta["status"] for meta in present if meta["status"] != states.SUCCESS]
    status = min(unfinished, key=lambda state: RANKS.get(state, len(RANKS)))
    progress = present[0]["result"] if status == PROGRESS and not is_group else None
    return TaskReply(task_id=task_id, status=status, result=jsonable(progress))


def ended_early(task_id: uuid.UUID, reply: TaskReply, every_task: list[Meta | None]) -> TaskReply:
    """A chain whose first link failed or was revoked never runs its last one:
    the answer would stay PENDING forever, so the link's end is the answer's."""
    for meta in every_task:
        if meta is not None and meta["status"] in (states.FAILURE, states.REVOKED):
            return combine(task_id, [meta], is_group=False)
    return reply


def verdict(
    reply: TaskReply, every_task: list[Meta | None], *, cancelled: bool, past_deadline: bool
) -> TaskReply:
    """The end of a task that no worker reported, when the evidence decides it.

    - A final state a worker stored is the answer: `reply`, as is.
    - Cancelled before its deadline, none of its tasks running: REVOKED. The
      revocation is stored before the record says cancelled, a worker stores
      STARTED before it looks for it, and a result outlives the deadline: such a
      task had not started, and never will.
    - Past its deadline (its expiry plus `lost_after`): LOST. No worker takes a
      task after its expiry, and one taken before has long ended: it expired in
      the queue, or its result was lost (Redis restarted, or it expired unread).
    """
    if reply.status in FINAL:
        return reply
    running = any(meta is not None and meta["status"] in RUNNING for meta in every_task)
    if cancelled and not running:
        return TaskReply(task_id=reply.task_id, status=states.REVOKED)
    if past_deadline:
        return TaskReply(task_id=reply.task_id, status=LOST)
    return reply
