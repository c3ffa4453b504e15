"""The async engine and its sessions (SQLAlchemy 2 over asyncpg)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings


class DatabaseUnavailableError(Exception):
    """PostgreSQL is out of reach or did not answer in time: a 503 (core/errors.py)."""


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.POSTGRES_DATABASE_URL,
        connect_args={
            # asyncpg's own defaults wait 60 s to connect, and forever for a statement.
            "timeout": settings.POSTGRES_TIMEOUT,
            "command_timeout": settings.POSTGRES_TIMEOUT,
        },
        # As long as a busy pooled connection can take to come back (a statement,
        # a new connection): under load a request waits; only a silent database gives 503.
        pool_timeout=2 * settings.POSTGRES_TIMEOUT,
        # A connection the server closed in the pool (a restart) is replaced, not an error.
        pool_pre_ping=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit, so a route can return what it saved.
    return async_sessionmaker(engine, expire_on_commit=False)


# What asyncpg raises when the server is out of reach (OSError: refused, reset;
# TimeoutError; its own errors while it starts, stops or has no connection left),
# and SQLAlchemy's TimeoutError when no pooled connection frees up in time.
UNREACHABLE = (
    OSError,
    exc.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether a session's error means the database is out of reach, not a mistake."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        # SQLAlchemy's adapter wraps asyncpg's error: look at asyncpg's.
        error = error.orig.__cause__ or error.orig if error.orig is not None else error
    return isinstance(error, UNREACHABLE)


@asynccontextmanager
async def open_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose errors say whether the database is out of reach
    (DatabaseUnavailableError); what was not committed is rolled back."""
    async with sessionmaker() as session:
        try:
            yield session
        except Exception as error:
            if is_unavailable(error):
                # Nothing to roll back on a connection that is gone.
                raise DatabaseUnavailableError from error
            await session.rollback()
            raise
