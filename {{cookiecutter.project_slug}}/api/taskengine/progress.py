"""A recorded task's state as a follower sees it move: one reply per change, from
every state its Celery tasks publish, in any order the channels and the first
read of Redis deliver them. Pure: no I/O (tests/engine/test_progress.py)."""

from celery import states

from taskengine.records import TaskRecord
from taskengine.replies import TaskReply
from taskengine.states import FINAL, PROGRESS, RANKS, Meta, combine, ended_early


def rank(meta: Meta) -> tuple[int, int]:
    """How far along a state of one task is, to tell a state read late from a
    newer one: a final state is furthest, a PROGRESS with more done further."""
    status = meta["status"]
    if status in FINAL:
        return len(RANKS), 0
    result = meta.get("result")
    done = result.get("done", 0) if status == PROGRESS and isinstance(result, dict) else 0
    return RANKS.get(status, 0), done


class TaskProgress:
    """The reply of a recorded task from the states seen of its tasks: a plain task
    reports its own, a workflow PROGRESS as {"done": finished, "total": members}."""

    def __init__(self, task: TaskRecord) -> None:
        self._task = task
        self._metas: dict[str, Meta] = {}
        # Per task, the state read from Redis when following began: a message
        # published before the read may come after it, and is ignored as stale.
        self._read: dict[str, Meta] = {}
        self.last: TaskReply | None = None

    def start(self, stored: list[Meta | None]) -> TaskReply | None:
        """Take the states read from Redis, in all_ids' order; the reply if it changed."""
        for task_id, meta in zip(self._task.all_ids, stored, strict=True):
            seen = self._metas.get(task_id)
            # A message may have brought a newer state while Redis was read.
            if meta is not None and (seen is None or rank(meta) > rank(seen)):
                self._metas[task_id] = meta
                self._read[task_id] = meta
        return self._changed()

    def update(self, meta: Meta) -> TaskReply | None:
        """Take one published state; the reply if it changed."""
        task_id, seen = meta["task_id"], self._metas.get(meta["task_id"])
        # A task's final state is its last; nothing it says after counts.
        if task_id not in self._task.all_ids or (seen is not None and seen["status"] in FINAL):
            return None
        read = self._read.get(task_id)
        if read is not None:
            if rank(meta) < rank(read):
                return None  # published before the read: stale
            del self._read[task_id]  # caught up: every later message is news
        self._metas[task_id] = meta
        return self._changed()

    def _changed(self) -> TaskReply | None:
        if self.last is not None and self.last.status in FINAL:
            return None  # the final reply is the last one
        reply = self.current()
        if reply == self.last:
            return None
        self.last = reply
        return reply

    def current(self) -> TaskReply:
        task = self._task
        answer = [self._metas.get(task_id) for task_id in task.answer_ids]
        every = [self._metas.get(task_id) for task_id in task.all_ids]
        reply = ended_early(task.id, combine(task.id, answer, task.is_group), every)
        if reply.status in FINAL or len(every) == 1:
            return reply
        finished = sum(1 for meta in every if meta is not None and meta["status"] == states.SUCCESS)
        if finished:
            progress = {"done": finished, "total": len(every)}
            return TaskReply(task_id=task.id, status=PROGRESS, result=progress)
        started = any(meta is not None and meta["status"] != states.PENDING for meta in every)
        return TaskReply(task_id=task.id, status=states.STARTED if started else states.PENDING)
