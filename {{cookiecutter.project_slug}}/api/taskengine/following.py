"""Following a task: its state each time it changes, the final one last (the
subscription's states, after what was stored before it; after QUIET_RECHECK
seconds without news, the state as status() reads it). TaskProgress, the rules
of how the replies move, is pure (tests/engine/test_progress.py)."""

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from celery import states

from taskengine.errors import RedisUnavailableError, TaskNotFoundError, TooManyFollowersError
from taskengine.leases import Leases
from taskengine.listener import ResultListener
from taskengine.record_store import TaskRecords
from taskengine.records import TaskRecord
from taskengine.results import StoredResults
from taskengine.states import FINAL, PROGRESS, RANKS, Meta, TaskReply, combine, ended_early
from taskengine.tracking import Tracker

QUIET_RECHECK = 5.0
# Seconds a follower's slot is leased, renewed at each quiet recheck: a dead process frees it then.
LEASE = 30.0


def rank(meta: Meta) -> tuple[int, int]:
    """How far along a task's state is, to tell one read late from a newer one."""
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


class Follower:
    """One follower's next replies, at most `size` in order, made of the states the
    listener delivers. The listener must never wait: when full, the oldest
    intermediate reply goes, never the final."""

    def __init__(self, progress: TaskProgress, size: int) -> None:
        self.progress = progress
        self._size = size
        self._replies: deque[TaskReply] = deque()
        self._ready = asyncio.Event()
        self._error: Exception | None = None

    def deliver(self, meta: Meta) -> None:
        reply = self.progress.update(meta)
        if reply is not None:
            self.put(reply)

    def put(self, reply: TaskReply) -> None:
        if len(self._replies) >= self._size:
            oldest = next((queued for queued in self._replies if queued.status not in FINAL), None)
            if oldest is not None:
                self._replies.remove(oldest)
        self._replies.append(reply)
        self._ready.set()

    def fail(self, error: Exception) -> None:
        """No more replies will come: get() raises the error once the queue is sent."""
        self._error = error
        self._ready.set()

    async def get(self) -> TaskReply:
        while not self._replies:
            if self._error is not None:
                raise self._error
            self._ready.clear()
            await self._ready.wait()
        return self._replies.popleft()


@dataclass
class Following:
    """This process's followers, each holding one of its owner's slots, renewed as it goes."""

    records: TaskRecords
    stored: StoredResults
    listener: ResultListener
    tracker: Tracker
    leases: Leases

    async def follow(
        self, owner_id: uuid.UUID, task_id: uuid.UUID, *, at_most: int, queue_size: int
    ) -> AsyncGenerator[TaskReply]:
        """The final state is kept in the record before it is given."""
        owner, slot = str(owner_id), uuid.uuid4().hex
        if not await self.leases.take(owner, slot, time.time() + LEASE, at_most):
            raise TooManyFollowersError(at_most)
        try:
            async for reply in self._states(owner, slot, owner_id, task_id, queue_size):
                yield reply
        finally:
            self.leases.release_soon(owner, [slot])

    async def _states(
        self, owner: str, slot: str, owner_id: uuid.UUID, task_id: uuid.UUID, queue_size: int
    ) -> AsyncGenerator[TaskReply]:
        records, tracker = self.records, self.tracker
        record = await records.find(owner_id, task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        if record.status in FINAL:
            yield record.reply()
            return
        follower = Follower(TaskProgress(record), queue_size)
        async with self.listener.subscribed(record.all_ids, follower) as confirmations:
            await self.listener.confirmed(confirmations)
            # Read once subscribed: every state stored later is delivered.
            first = follower.progress.start(await self.stored.fetch(record.all_ids))
            # Queued at once: the listener may queue newer states meanwhile.
            if first is not None:
                follower.put(first)
            if first is None or first.status not in FINAL:
                # Another reader may have kept the end, and had Redis forget
                # it, before the subscription: then only the record knows it.
                record = await records.find(owner_id, task_id) or record
                if record.status in FINAL:
                    yield record.reply()
                    return
            while True:
                try:
                    async with asyncio.timeout(QUIET_RECHECK):
                        reply = await follower.get()
                except TimeoutError:
                    # Quiet: the slot's lease renewed, and the record read for
                    # an end no worker publishes (cancelled in the queue, lost).
                    with contextlib.suppress(RedisUnavailableError):
                        await self.leases.renew(owner, slot, time.time() + LEASE)
                    record = await records.find(owner_id, task_id) or record
                    reply = await tracker.state(record)  # concluded if final
                    if reply.status in FINAL:
                        yield reply
                        return
                    continue
                if reply.status in FINAL:
                    yield await tracker.conclude(record, reply)
                    return
                yield reply
