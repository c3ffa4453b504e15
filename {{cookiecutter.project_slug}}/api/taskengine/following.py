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
from collections.abc import AsyncGenerator, AsyncIterator

from taskengine.errors import TaskNotFoundError, TooManyFollowersError
from taskengine.leases import Leases
from taskengine.listener import ResultListener
from taskengine.progress import TaskProgress
from taskengine.record_store import TaskRecords
from taskengine.replies import TaskReply
from taskengine.states import FINAL, Meta
from taskengine.tracking import Tracker

QUIET_RECHECK = 5.0
# Seconds a follower's slot is leased for; renewed a third of that before it ends.
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


class FollowerSlots:
    """Each owner's followers, counted across processes (leases.py); one task
    renews the leases of every follower of this process while any lives."""

    def __init__(self, leases: Leases) -> None:
        self._leases = leases
        self._held: dict[str, set[str]] = {}
        self._renewing: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def hold(self, owner_id: uuid.UUID, limit: int) -> AsyncIterator[None]:
        owner, member = str(owner_id), uuid.uuid4().hex
        if not await self._leases.take(owner, member, time.time() + LEASE, limit):
            raise TooManyFollowersError(limit)
        self._held.setdefault(owner, set()).add(member)
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew(), name="follower-leases")
        try:
            yield
        finally:
            self._held[owner].discard(member)
            if not self._held[owner]:
                del self._held[owner]
            self._leases.release_soon(owner, [member])

    async def _renew(self) -> None:
        while self._held:
            await asyncio.sleep(LEASE / 3)
            with contextlib.suppress(Exception):  # the next round may succeed
                await self._leases.renew(self._held, time.time() + LEASE)

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing


async def follow(
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    records: TaskRecords,
    listener: ResultListener,
    tracker: Tracker,
    slots: FollowerSlots,
    at_most: int,
    queue_size: int,
) -> AsyncGenerator[TaskReply]:
    """Each state of the owner's task as it changes, the final one last (kept
    in the record before it is given)."""
    async with slots.hold(owner_id, at_most):
        record = await records.find(owner_id, task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        if record.status in FINAL:
            yield record.reply()
            return
        progress = TaskProgress(record)
        outbox = Outbox(queue_size)
        async with listener.subscribed(record.all_ids, Follower(progress, outbox)) as subscription:
            first = progress.start(await subscription.stored())
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
