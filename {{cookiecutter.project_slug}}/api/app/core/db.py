"""The async engine and its sessions (SQLAlchemy 2 over asyncpg)."""

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
