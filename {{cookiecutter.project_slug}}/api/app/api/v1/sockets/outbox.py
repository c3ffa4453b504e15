"""What waits to be sent on one socket."""

import asyncio
from collections import deque

from app.schemas.task import TaskReply
from app.services.task_states import FINAL


class Outbox:
    """At most `size` replies for one socket, in order.

    Filled by the result listener, which must never wait for a client: when a
    slow reader lets the outbox fill up, the oldest intermediate reply is
    dropped. The reader misses a step of progress, never the final reply, and
    the other sockets are not held up.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._replies: deque[TaskReply] = deque()
        self._ready = asyncio.Event()
        self._error: Exception | None = None

    def put(self, reply: TaskReply) -> None:
        if len(self._replies) >= self._size:
            for queued in self._replies:
                if queued.status not in FINAL:
                    self._replies.remove(queued)
                    break
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
