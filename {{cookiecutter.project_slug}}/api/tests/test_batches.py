"""Writes that concurrent requests share (app/core/batches.py)."""

import asyncio

import pytest

from app.core.batches import Batches


class Store:
    """Records each batch it is given; refuses the batches holding `refused`."""

    def __init__(self, refused: object = None) -> None:
        self.batches: list[list[object]] = []
        self.refused = refused

    async def write(self, batch: list[object]) -> None:
        await asyncio.sleep(0.01)
        self.batches.append(batch)
        if self.refused in batch:
            raise ValueError(self.refused)


async def test_items_queued_during_a_write_go_in_the_next_batch() -> None:
    store = Store()
    batches = Batches(store.write)
    first = batches.add(1)
    await asyncio.sleep(0)  # the first write has started with one item
    rest = [batches.add(item) for item in range(2, 6)]
    await asyncio.gather(first, *rest)
    assert store.batches == [[1], [2, 3, 4, 5]]


async def test_an_error_reaches_every_caller_of_its_batch_unless_items_go_one_by_one() -> None:
    store = Store(refused=3)
    batches = Batches(store.write)
    outcomes = await asyncio.gather(
        *(batches.add(item) for item in range(5)), return_exceptions=True
    )
    assert [type(outcome) for outcome in outcomes] == [ValueError] * 5

    store = Store(refused=3)
    alone = Batches(store.write, one_by_one_after=lambda error: isinstance(error, ValueError))
    outcomes = await asyncio.gather(*(alone.add(item) for item in range(5)), return_exceptions=True)
    assert [outcome is None for outcome in outcomes] == [True, True, True, False, True]
    assert store.batches == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]


async def test_a_caller_that_goes_away_does_not_stop_the_write() -> None:
    store = Store()
    batches = Batches(store.write)
    waiting = asyncio.ensure_future(asyncio.shield(batches.add("kept")))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await batches.close()
    assert store.batches == [["kept"]]
