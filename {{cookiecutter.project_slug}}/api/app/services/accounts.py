"""The accounts that tokens belong to, read from PostgreSQL at most once per
ACCOUNT_CACHE_SECONDS per account and process: reading it for every private request
cost more than the rest of /users/me (docs/http-api.md, Security choices)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from async_lru import alru_cache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import open_session
from app.core.security import InvalidTokenError, decode_access_token
from app.models import User

# Accounts kept per process at most; the least recently used goes first.
MAX_ACCOUNTS = 100_000


class InactiveUserError(Exception):
    """The token is valid, but its account was deactivated."""


@dataclass(frozen=True, slots=True)
class Account:
    """An account as requests see it: a copy they share, not a row of a session."""

    id: uuid.UUID
    email: str
    is_active: bool
    is_superuser: bool
    created_at: datetime


class AccountCache:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], seconds: float) -> None:
        self._sessionmaker = sessionmaker
        self._seconds = seconds
        self._read_kept = alru_cache(maxsize=MAX_ACCOUNTS, ttl=seconds)(self._read)

    async def get(self, account_id: uuid.UUID) -> Account | None:
        """The account, or None; DatabaseUnavailableError if PostgreSQL did not answer."""
        if not self._seconds:  # 0: read on every request
            return await self._read(account_id)
        return await self._read_kept(account_id)

    def forget(self, account_id: uuid.UUID) -> None:
        """Read the account afresh next time: it has just been changed."""
        self._read_kept.cache_invalidate(account_id)

    async def _read(self, account_id: uuid.UUID) -> Account | None:
        async with open_session(self._sessionmaker) as session:
            user = await session.get(User, account_id)
        if user is None:
            return None
        return Account(user.id, user.email, user.is_active, user.is_superuser, user.created_at)


async def account_for_token(accounts: AccountCache, token: str, settings: Settings) -> Account:
    """The active account the token was issued to: InvalidTokenError for a bad token
    or an account that is gone, InactiveUserError for a deactivated one."""
    account = await accounts.get(decode_access_token(token, settings))
    if account is None:
        raise InvalidTokenError("no such account")
    if not account.is_active:
        raise InactiveUserError(account.id)
    return account
