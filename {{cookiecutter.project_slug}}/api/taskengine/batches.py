"""Writes that concurrent requests share. A request queues its item; whoever
finds no write under way starts one, which writes everything queued so far at
once, and goes on while more is queued. No timer: one request alone is a batch
of one, and under load a batch holds what came during the previous write."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """`write(batch)` returns one result per item: each caller gets its own, or
    the batch's error (a batch is made so that only a store out of reach refuses it)."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]]) -> None:
        self._write = write
        self._queued: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, item: Item) -> "asyncio.Future[Result]":
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if self._writing is None:
            # A task of its own: a request that goes away does not stop the others' write.
            self._writing = asyncio.create_task(self._write_queued())
        return done

    def add_in_background(self, item: Item) -> None:
        """Queue the item; nobody waits for it, nor hears of its failure."""
        self.add(item).add_done_callback(lambda done: done.cancelled() or done.exception())

    async def close(self) -> None:
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await self._write_batch(batch)
        except BaseException:  # cancelled: the process is stopping
            for _, done in self._queued:
                done.cancel()
            self._queued = []
            raise
        finally:
            self._writing = None

    async def _write_batch(self, batch: list[tuple[Item, "asyncio.Future[Result]"]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as error:
            settle(batch, error=error)
        except BaseException:
            settle(batch, error=None)
            raise
        else:
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)


def settle(batch: list[tuple[Item, "asyncio.Future[Result]"]], error: Exception | None) -> None:
    """Fail each caller not told yet with the error; cancel them without one."""
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.cancel()
        else:
            done.set_exception(error)
