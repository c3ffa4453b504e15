"""Following a task: its state each time it changes, until the final one.

A follower subscribes to its tasks' channels, reads what they stored before,
and is told each later state; every QUIET_RECHECK seconds without news it
reads the task's state as a status request would, for an end that no worker
publishes (cancelled in the queue, lost).
"""

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator

from taskengine.errors import RedisUnavailableError, TaskNotFoundError, TooManyFollowersError
from taskengine.leases import Leases
from taskengine.listener import ResultListener
from taskengine.progress import TaskProgress
from taskengine.record_store import TaskRecords
from taskengine.replies import TaskReply
from taskengine.states import FINAL, Meta
from taskengine.tracking import Tracker

QUIET_RECHECK = 5.0
# Seconds a follower's slot is leased for: renewed at every quiet recheck, so
# a process that dies frees its followers' slots within this.
LEASE = 30.0


class Outbox:
    """At most `size` replies waiting for one follower, in order. Filled by the
    listener, which must never wait: when a slow reader lets it fill up, the
    oldest intermediate reply is dropped, never the final one."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._replies: deque[TaskReply] = deque()
        self._ready = asyncio.Event()
        self._error: Exception | None = None

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


class Follower:
    """Turns each state the listener delivers into the reply to send."""

    def __init__(self, progress: TaskProgress, outbox: Outbox) -> None:
        self._progress = progress
        self._outbox = outbox

    def deliver(self, meta: Meta) -> None:
        reply = self._progress.update(meta)
        if reply is not None:
            self._outbox.put(reply)

    def fail(self, error: Exception) -> None:
        self._outbox.fail(error)


class Following:
    """Every follower of this process's tasks. Each holds one of its owner's
    slots (leases.py: counted across processes), renewed as it goes."""

    def __init__(
        self, records: TaskRecords, listener: ResultListener, tracker: Tracker, leases: Leases
    ) -> None:
        self._records = records
        self._listener = listener
        self._tracker = tracker
        self._leases = leases

    async def follow(
        self, owner_id: uuid.UUID, task_id: uuid.UUID, *, at_most: int, queue_size: int
    ) -> AsyncGenerator[TaskReply]:
        """Each state of the owner's task as it changes, the final one last (kept
        in the record before it is given)."""
        owner, slot = str(owner_id), uuid.uuid4().hex
        if not await self._leases.take(owner, slot, time.time() + LEASE, at_most):
            raise TooManyFollowersError(at_most)
        try:
            async for reply in self._states(owner, slot, owner_id, task_id, queue_size):
                yield reply
        finally:
            self._leases.release_soon(owner, [slot])

    async def _states(
        self, owner: str, slot: str, owner_id: uuid.UUID, task_id: uuid.UUID, queue_size: int
    ) -> AsyncGenerator[TaskReply]:
        records, tracker = self._records, self._tracker
        record = await records.find(owner_id, task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        if record.status in FINAL:
            yield record.reply()
            return
        progress = TaskProgress(record)
        outbox = Outbox(queue_size)
        async with self._listener.subscribed(record.all_ids, Follower(progress, outbox)) as sub:
            first = progress.start(await sub.stored())
            # Queued at once: the listener may queue newer states meanwhile.
            if first is not None:
                outbox.put(first)
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
                        reply = await outbox.get()
                except TimeoutError:
                    # Quiet: the slot's lease renewed, and the record read for
                    # an end no worker publishes (cancelled in the queue, lost).
                    with contextlib.suppress(RedisUnavailableError):
                        await self._leases.renew(owner, slot, time.time() + LEASE)
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
