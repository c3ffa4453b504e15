"""What a subscriber of the result listener (listener.py) is, and is given."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from celery import states

from taskengine.errors import RedisUnavailableError
from taskengine.states import Meta


class Subscriber(Protocol):
    """Told each state published on its tasks' channels, or that none will come."""

    def deliver(self, meta: Meta) -> None: ...

    def fail(self, error: Exception) -> None: ...


class Subscription:
    def __init__(
        self,
        confirmations: list["asyncio.Future[None]"],
        timeout: float,
        on_unconfirmed: Callable[[], None],
        fetch: Callable[[list[str]], Awaitable[list[Meta | None]]],
        task_ids: list[str],
    ) -> None:
        self._confirmations = confirmations
        self._timeout = timeout
        self._on_unconfirmed = on_unconfirmed
        self._fetch = fetch
        self._task_ids = task_ids

    async def confirmed(self) -> None:
        """Return once Redis confirmed: every state published from then on is delivered."""
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.gather(*self._confirmations)
        except TimeoutError:
            self._on_unconfirmed()
            raise RedisUnavailableError("Redis did not confirm the subscription") from None

    async def stored(self) -> list[Meta | None]:
        """The states stored before the subscription: later ones are delivered."""
        await self.confirmed()
        return await self._fetch(self._task_ids)


class FinalStates:
    """A subscriber that waits for the final state of every one of its tasks."""

    def __init__(self, task_ids: list[str]) -> None:
        self._waiting = set(task_ids)
        self._metas: dict[str, Meta] = {}
        self.all_final: asyncio.Future[list[Meta]] = asyncio.get_running_loop().create_future()
        self._order = task_ids

    def deliver(self, meta: Meta) -> None:
        if meta["status"] in states.READY_STATES and meta["task_id"] in self._waiting:
            self._waiting.discard(meta["task_id"])
            self._metas[meta["task_id"]] = meta
            if not self._waiting and not self.all_final.done():
                self.all_final.set_result([self._metas[task_id] for task_id in self._order])

    def fail(self, error: Exception) -> None:
        if not self.all_final.done():
            self.all_final.set_exception(error)

    def close(self) -> None:
        """Nobody waits any more: a failure told meanwhile is not an error to log."""
        if not self.all_final.done():
            self.all_final.cancel()
        elif not self.all_final.cancelled():
            self.all_final.exception()
