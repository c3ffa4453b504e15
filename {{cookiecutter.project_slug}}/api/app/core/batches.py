"""Writes that concurrent requests share.

A request queues its item; whoever finds no write under way starts one, which
takes everything queued so far, writes it at once, and goes on while more is
queued. Nobody waits for a timer: at one request at a time a batch is one
item, and under load a batch holds whatever came during the previous write.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batches(Generic[Item]):
    """Items written `write(batch)` at a time; each caller learns how its own went."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[None]],
        *,
        one_by_one_after: Callable[[Exception], bool] = lambda error: False,
    ) -> None:
        self._write = write
        # Which errors of a batch call for writing its items one by one, so
        # that one bad item does not fail the others (not the errors that
        # say the store is out of reach: each item would wait for its own).
        self._one_by_one_after = one_by_one_after
        self._queued: list[tuple[Item, asyncio.Future[None]]] = []
        # The task writing batches, while there are any to write.
        self._writing: asyncio.Task[None] | None = None

    def add(self, item: Item) -> "asyncio.Future[None]":
        """Queue the item; the future ends when its batch is committed, or
        with the batch's error."""
        done = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if self._writing is None:
            # A task of its own: a request that goes away does not stop the
            # write of the others' rows.
            self._writing = asyncio.create_task(self._write_queued())
        return done

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await self._write_batch(batch)
        except BaseException:  # cancelled: the process is stopping
            for _, done in pending(self._queued):
                done.cancel()
            self._queued = []
            raise
        finally:
            self._writing = None

    async def _write_batch(self, batch: list[tuple[Item, "asyncio.Future[None]"]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1 and self._one_by_one_after(error):
                await self._write_one_by_one(batch)
            else:
                fail(batch, error)
        except BaseException:
            cancel(batch)
            raise
        else:
            for _, done in pending(batch):
                done.set_result(None)

    async def _write_one_by_one(self, batch: list[tuple[Item, "asyncio.Future[None]"]]) -> None:
        for index, (item, done) in enumerate(batch):
            try:
                await self._write([item])
            except Exception as error:
                if not self._one_by_one_after(error):
                    # Out of reach: the others would only wait for it in turn.
                    fail(batch[index:], error)
                    return
                fail([(item, done)], error)
            except BaseException:
                cancel(batch[index:])
                raise
            else:
                if not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        """Wait for what is queued to be written."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    def add_in_background(self, item: Item) -> None:
        """Queue the item; nobody waits for its write, nor hears of its failure."""
        self.add(item).add_done_callback(lambda done: done.cancelled() or done.exception())


def pending(
    batch: list[tuple[Item, "asyncio.Future[None]"]],
) -> list[tuple[Item, "asyncio.Future[None]"]]:
    """The items of the batch whose callers were not told yet."""
    return [(item, done) for item, done in batch if not done.done()]


def fail(batch: list[tuple[Item, "asyncio.Future[None]"]], error: Exception) -> None:
    for _, done in pending(batch):
        done.set_exception(error)


def cancel(batch: list[tuple[Item, "asyncio.Future[None]"]]) -> None:
    for _, done in pending(batch):
        done.cancel()
