"""What state a request's tasks are in, as one reply: the precedence rules.

Pure functions of what Celery stored for each task; no I/O, so the rules are
tested on their own (tests/test_task_states.py).
"""

import uuid

from celery import states
from fastapi.encoders import jsonable_encoder

from app.core.producer.results import Meta
from app.schemas.task import TaskError, TaskReply

# Unfinished states in the order a task goes through them: a group reports its
# least advanced member's state until all of them are done. PROGRESS is what
# the worker's long_running task reports while it works.
PROGRESS = "PROGRESS"
IN_FLIGHT_ORDER = {
    state: rank
    for rank, state in enumerate(
        (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY, PROGRESS)
    )
}
# Decided by the API, never stored by a worker: nobody will ever learn how
# this task ended (see verdict()).
LOST = "LOST"
FINAL = frozenset(states.READY_STATES | {LOST})
# A worker runs the task now, and will store how it ends.
RUNNING = frozenset((states.STARTED, PROGRESS))


def describe(error: object) -> TaskError:
    """The exception a task raised, by type and message; never its traceback."""
    return TaskError(type=type(error).__name__, message=str(error))


def combine(task_id: uuid.UUID, metas: list[Meta | None], is_group: bool) -> TaskReply:
    """One reply for the tasks that make an answer (None: nothing stored yet).

    A failure wins over everything, then a revocation; then a task not yet seen
    keeps the whole answer PENDING; a group succeeds only when all of its
    members did, and until then reports its least advanced member's state.
    """
    present = [meta for meta in metas if meta is not None]
    failed = next((meta for meta in present if meta["status"] == states.FAILURE), None)
    if failed is not None:
        return TaskReply(task_id=task_id, status=states.FAILURE, error=describe(failed["result"]))
    if any(meta["status"] == states.REVOKED for meta in present):
        return TaskReply(task_id=task_id, status=states.REVOKED)
    if len(present) < len(metas):
        return TaskReply(task_id=task_id, status=states.PENDING)
    if all(meta["status"] == states.SUCCESS for meta in present):
        values = [jsonable_encoder(meta["result"]) for meta in present]
        return TaskReply(
            task_id=task_id, status=states.SUCCESS, result=values if is_group else values[0]
        )
    unfinished = [meta["status"] for meta in present if meta["status"] != states.SUCCESS]
    status = min(unfinished, key=lambda state: IN_FLIGHT_ORDER.get(state, len(IN_FLIGHT_ORDER)))
    progress = present[0]["result"] if status == PROGRESS and not is_group else None
    return TaskReply(task_id=task_id, status=status, result=jsonable_encoder(progress))


def ended_early(task_id: uuid.UUID, reply: TaskReply, every_task: list[Meta | None]) -> TaskReply:
    """A chain whose first link failed or was revoked never runs its last one:
    the answer's own state would stay PENDING forever, so the link's end is the
    answer's."""
    for meta in every_task:
        if meta is not None and meta["status"] in (states.FAILURE, states.REVOKED):
            return combine(task_id, [meta], is_group=False)
    return reply


def verdict(
    reply: TaskReply, every_task: list[Meta | None], *, revoked: bool, past_deadline: bool
) -> TaskReply:
    """The end of a task that no worker reported, when the evidence decides it.

    - A final state a worker stored is the answer: `reply` is returned as is.
    - Revoked (before its deadline), and none of its tasks running: REVOKED.
      The revocation is stored before the record says so, a worker stores
      STARTED before it looks for the revocation, and a result outlives the
      deadline: a task with nothing stored and nothing running had not
      started, and never will.
    - Past its deadline (its expiry plus TASK_LOST_AFTER): LOST. No worker
      takes a task after its expiry, and one taken before has long ended: it
      expired in the queue, or its result was lost (Redis restarted, or the
      result expired before anyone read it).
    """
    if reply.status in FINAL:
        return reply
    running = any(meta is not None and meta["status"] in RUNNING for meta in every_task)
    if revoked and not running:
        return TaskReply(task_id=reply.task_id, status=states.REVOKED)
    if past_deadline:
        return TaskReply(task_id=reply.task_id, status=LOST)
    return reply
