"""The service's database for a run: made, migrated, and dropped after it."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from commands.migrate import create_database_if_missing, upgrade_to_head
from testkit import drop_database


@contextmanager
def migrated_database(url: str) -> Iterator[str]:
    """Create the URL's database and migrate it; drop it when the block ends."""
    asyncio.run(create_database_if_missing(url))
    try:
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(drop_database(url))
