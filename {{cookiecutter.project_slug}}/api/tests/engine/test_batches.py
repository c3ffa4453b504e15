"""Writes that concurrent requests share (taskengine/batches.py); no services."""

import asyncio
import gc

import pytest

from taskengine.batches import Batches


class Store:
    """Records each batch it is given and answers each item doubled; refuses
    the batches that hold `refused`."""

    def __init__(self, refused: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.refused = refused

    async def write(self, batch: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        self.batches.append(batch)
        if self.refused in batch:
            raise ValueError(self.refused)
        return [item * 2 for item in batch]


async def test_items_queued_during_a_write_go_in_the_next_batch() -> None:
    store = Store()
    batches = Batches(store.write)
    first = batches.add(1)
    await asyncio.sleep(0)  # the first write has started with one item
    rest = [batches.add(item) for item in range(2, 6)]
    await asyncio.gather(first, *rest)
    assert store.batches == [[1], [2, 3, 4, 5]]


async def test_each_caller_gets_the_result_of_its_own_item() -> None:
    store = Store()
    batches = Batches(store.write)
    results = await asyncio.gather(*(batches.add(item) for item in [5, 1, 3]))
    assert results == [10, 2, 6]
    assert store.batches == [[5, 1, 3]]


async def test_an_error_reaches_every_caller_of_its_batch() -> None:
    store = Store(refused=3)
    batches = Batches(store.write)
    outcomes = await asyncio.gather(
        *(batches.add(item) for item in range(5)), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [ValueError] * 5
    assert store.batches == [[0, 1, 2, 3, 4]]


async def test_a_caller_that_goes_away_does_not_stop_the_write() -> None:
    store = Store()
    batches = Batches(store.write)
    waiting = asyncio.ensure_future(asyncio.shield(batches.add(7)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await batches.close()
    assert store.batches == [[7]]


async def test_an_item_added_in_the_background_is_written_and_its_error_kept_quiet() -> None:
    """Nobody awaits it: its failure must not be reported as never retrieved."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        store = Store(refused=1)
        batches = Batches(store.write)
        batches.add_in_background(1)
        batches.add_in_background(2)
        await batches.close()
        del batches
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert store.batches == [[1, 2]]
    assert reported == []


async def test_close_waits_for_every_batch_queued() -> None:
    store = Store()
    batches = Batches(store.write)
    batches.add_in_background(1)
    await asyncio.sleep(0)
    batches.add_in_background(2)
    await batches.close()
    assert store.batches == [[1], [2]]
