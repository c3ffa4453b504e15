"""The accounts that tokens belong to, read from PostgreSQL at most once per
ACCOUNT_CACHE_SECONDS per account and process.

Every private request needs its account (is it still active? a superuser?).
Reading it on every request cost more than everything else /users/me does
(`make bench`). Here an account read is kept, as a frozen snapshot, for
ACCOUNT_CACHE_SECONDS counted from the moment the read began: a change made
anyhow (a route, `make restore-superuser`, SQL by hand), on any process, is
seen by every process within that time, with nothing to send between them.
The process that makes a change through the API drops its copy at once.

Concurrent requests for an account that is not kept share one read.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from cachetools import TLRUCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import open_session
from app.models import User

# Accounts kept per process at most; the least recently used goes first.
MAX_ACCOUNTS = 100_000


@dataclass(frozen=True, slots=True)
class Account:
    """An account as a request sees it: a copy, not a row bound to a session,
    so that concurrent requests can share it."""

    id: uuid.UUID
    email: str
    is_active: bool
    is_superuser: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Kept:
    account: Account
    # time.monotonic() after which the copy is not used any more.
    until: float


def kept_until(_key: uuid.UUID, kept: Kept, _now: float) -> float:
    return kept.until


class AccountCache:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], seconds: float) -> None:
        self.sessionmaker = sessionmaker
        self.seconds = seconds
        self._kept: TLRUCache[uuid.UUID, Kept] = TLRUCache(
            MAX_ACCOUNTS, ttu=kept_until, timer=time.monotonic
        )
        # Reads under way, with when they began: a request joins one only
        # while its copy would still be fresh enough to keep.
        self._reading: dict[uuid.UUID, tuple[float, asyncio.Future[Kept | None]]] = {}

    async def get(self, account_id: uuid.UUID) -> Account | None:
        """The account, or None if none has this id; DatabaseUnavailableError
        if it had to be read and PostgreSQL did not answer."""
        kept = self._kept.get(account_id)
        if kept is None:
            kept = await self._read_shared(account_id)
        return kept.account if kept else None

    def forget(self, account_id: uuid.UUID) -> None:
        """Read the account afresh next time: it has just been changed."""
        self._kept.pop(account_id, None)
        self._reading.pop(account_id, None)

    async def _read_shared(self, account_id: uuid.UUID) -> Kept | None:
        began = time.monotonic()
        reading = self._reading.get(account_id)
        read: asyncio.Future[Kept | None]
        if reading is None or reading[0] + self.seconds <= began:
            read = asyncio.ensure_future(self._read(account_id, began))
            self._reading[account_id] = (began, read)
            read.add_done_callback(lambda _: self._done_reading(account_id, read))
        else:
            read = reading[1]
        # Shielded: a request that goes away does not cancel the others' read.
        return await asyncio.shield(read)

    def _done_reading(self, account_id: uuid.UUID, read: "asyncio.Future[Kept | None]") -> None:
        if self._reading.get(account_id, (0.0, None))[1] is read:
            del self._reading[account_id]
        if not read.cancelled():
            read.exception()  # raised to the requests that waited, if any

    async def _read(self, account_id: uuid.UUID, began: float) -> Kept | None:
        async with open_session(self.sessionmaker) as session:
            user = await session.get(User, account_id)
        if user is None:
            return None
        kept = Kept(
            Account(user.id, user.email, user.is_active, user.is_superuser, user.created_at),
            until=began + self.seconds,
        )
        # Not kept if it was changed while being read (forget() dropped the read).
        if self._reading.get(account_id, (0.0, None))[0] == began:
            self._kept[account_id] = kept
        return kept
