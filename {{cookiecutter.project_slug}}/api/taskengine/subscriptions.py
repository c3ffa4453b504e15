"""The subscribers of the result listener (listener.py)."""

import asyncio
from typing import Protocol

from celery import states

from taskengine.states import Meta


class Subscriber(Protocol):
    """Told each state published on its tasks' channels, or that none will come."""

    def deliver(self, meta: Meta) -> None: ...

    def fail(self, error: Exception) -> None: ...


class FinalStates:
    """A subscriber that waits for the final state of every one of the answer's
    tasks, or for any of its tasks to fail or be revoked: a chain whose first
    link was revoked never runs, nor stores anything for, its last one."""

    def __init__(self, answer_ids: list[str], all_ids: list[str]) -> None:
        self._waiting = set(answer_ids)
        self._all = set(all_ids)
        self._metas: dict[str, Meta] = {}
        self.ended: asyncio.Future[dict[str, Meta]] = asyncio.get_running_loop().create_future()

    def deliver(self, meta: Meta) -> None:
        task_id, status = meta["task_id"], meta["status"]
        if status in states.READY_STATES and task_id in self._all and task_id not in self._metas:
            self._waiting.discard(task_id)
            self._metas[task_id] = meta
            ended = not self._waiting or status in (states.FAILURE, states.REVOKED)
            if ended and not self.ended.done():
                self.ended.set_result(dict(self._metas))

    def fail(self, error: Exception) -> None:
        if not self.ended.done():
            self.ended.set_exception(error)

    def close(self) -> None:
        """Nobody waits any more: a failure told meanwhile is not an error to log."""
        if not self.ended.done():
            self.ended.cancel()
        elif not self.ended.cancelled():
            self.ended.exception()
