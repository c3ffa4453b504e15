"""The async engine and its sessions (SQLAlchemy 2 over asyncpg)."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.POSTGRES_DATABASE_URL,
        # Replace connections the server closed while they sat in the pool.
        pool_pre_ping=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit, so a route can return what it saved.
    return async_sessionmaker(engine, expire_on_commit=False)


async def commit_without_waiting_for_flush(session: AsyncSession) -> None:
    """Commit without waiting for PostgreSQL to flush its log to disk.

    synchronous_commit is off for this transaction only. The flush is the slowest
    part of a short request; a crash of the database within a fraction of a
    second could lose this commit, never corrupt anything. For writes that are
    a record of work already done, not the work itself.
    """
    await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    await session.commit()
