"""Awaiting the broker's confirm and a task's results side by side.

A waiting request publishes and watches at once; whichever settles first
decides what the request does next.
"""

import asyncio
from typing import Any

from app.core.producer.results import Meta


async def first_result(
    publishing: "asyncio.Future[None]", results: "asyncio.Future[list[Meta]]"
) -> list[Meta | None]:
    """The results, as soon as they are there. The broker's confirm is only
    awaited while there are none: results prove the message arrived, and a
    failed publish (no confirm, no broker) ends the wait at once."""
    racing: set[asyncio.Future[Any]] = {publishing, results}
    done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    if results not in done:
        publishing.result()  # raises BrokerUnavailableError
    return list(await results)


def settle(future: "asyncio.Future[Any]") -> None:
    """Cancel a future that is still pending; consume the error of one that
    failed (nobody awaits it any more, and asyncio would log it as lost)."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
