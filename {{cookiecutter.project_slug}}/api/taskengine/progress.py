"""A recorded task's state as a follower sees it move: one reply per change.

Fed with every state its Celery tasks publish, in any order the channels and
the first read of Redis deliver them. Pure: no I/O, so the rules are tested on
their own (tests/engine/test_progress.py).
"""

from celery import states

from taskengine.records import TaskRecord
from taskengine.replies import TaskReply
from taskengine.states import FINAL, PROGRESS, RANKS, Meta, combine, ended_early

# How far along a state is, to tell a state read late from a newer one.
FINAL_RANK = len(RANKS)


def rank(meta: Meta) -> tuple[int, int]:
    """Compare states of one task: a PROGRESS with more done is further along."""
    status = meta["status"]
    if status in FINAL:
        return FINAL_RANK, 0
    result = meta.get("result")
    done = result.get("done", 0) if status == PROGRESS and isinstance(result, dict) else 0
    return RANKS.get(status, 0), done


class TaskProgress:
    """The reply a recorded task gives now, from the states seen of its tasks.

    A plain task reports its own states (PROGRESS with {"done", "total"} from
    the worker); a workflow reports PROGRESS as members finished / total. The
    final reply is the one the waiting endpoint and GET /tasks/{id} give.
    """

    def __init__(self, task: TaskRecord) -> None:
        self._task_id = task.id
        self._answer_ids = list(task.answer_ids)
        self._all_ids = list(task.all_ids)
        self._is_group = task.is_group
        self._metas: dict[str, Meta] = {}
        # Per task, the state read from Redis when following began. A message
        # published before that read may be delivered after it: until a message
        # catches up with the state read, older ones are stale and ignored.
        self._read: dict[str, Meta] = {}
        self.last: TaskReply | None = None

    def start(self, stored: list[Meta | None]) -> TaskReply | None:
        """Take the states read from Redis (None: nothing stored yet), in the
        order of the record's all_ids; the reply if it changed."""
        for task_id, meta in zip(self._all_ids, stored, strict=True):
            seen = self._metas.get(task_id)
            # A message may have brought a newer state while Redis was read.
            if meta is not None and (seen is None or rank(meta) > rank(seen)):
                self._metas[task_id] = meta
                self._read[task_id] = meta
        return self._changed()

    def update(self, meta: Meta) -> TaskReply | None:
        """Take one published state; the reply if it changed."""
        task_id = meta["task_id"]
        if not self._is_news(task_id, meta):
            return None
        read = self._read.get(task_id)
        if read is not None:
            if rank(meta) < rank(read):
                return None  # published before the read: stale
            del self._read[task_id]  # caught up: every later message is news
        self._metas[task_id] = meta
        return self._changed()

    def _is_news(self, task_id: str, meta: Meta) -> bool:
        seen = self._metas.get(task_id)
        # A task's final state is its last; nothing it says after counts.
        return task_id in self._all_ids and (seen is None or seen["status"] not in FINAL)

    def _changed(self) -> TaskReply | None:
        if self.last is not None and self.last.status in FINAL:
            return None  # the final reply is the last one
        reply = self.current()
        if reply == self.last:
            return None
        self.last = reply
        return reply

    def current(self) -> TaskReply:
        answer = [self._metas.get(task_id) for task_id in self._answer_ids]
        every = [self._metas.get(task_id) for task_id in self._all_ids]
        reply = ended_early(self._task_id, combine(self._task_id, answer, self._is_group), every)
        if reply.status in FINAL or len(self._all_ids) == 1:
            return reply
        finished = sum(1 for meta in every if meta is not None and meta["status"] == states.SUCCESS)
        if finished:
            progress = {"done": finished, "total": len(self._all_ids)}
            return TaskReply(task_id=self._task_id, status=PROGRESS, result=progress)
        started = any(meta is not None and meta["status"] != states.PENDING for meta in every)
        status = states.STARTED if started else states.PENDING
        return TaskReply(task_id=self._task_id, status=status)
