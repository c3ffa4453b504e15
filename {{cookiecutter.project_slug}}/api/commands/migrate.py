"""`python -m commands.migrate`: create the database if it is missing, migrate it,
and create the first superuser from the settings.

`make migrate` runs this; it is safe to run again at any time, and by several
processes at once (replicas that each migrate before they serve): they take
turns, and the later ones find the work done.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.services.users import create_user, get_by_email

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@contextlib.asynccontextmanager
async def migration_lock(database_url: str) -> AsyncIterator[None]:
    """Hold PostgreSQL's advisory lock of this database's migrations, taken on
    the server's `postgres` database (the target may not exist yet). It is the
    session's: a run that dies lets it go with its connection."""
    target = make_url(database_url)
    server = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    key = {"key": f"migrate {target.database}"}
    try:
        async with server.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), key)
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
    finally:
        await server.dispose()


async def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database through the server's `postgres` database.

    Returns True when the database was created, False when it already existed.
    """
    target = make_url(database_url)
    name = target.database
    if not name:
        raise ValueError("POSTGRES_DATABASE_URL names no database")
    # CREATE DATABASE cannot run inside a transaction.
    server = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": name},
            )
            if exists:
                return False
            quoted = connection.dialect.identifier_preparer.quote(name)
            await connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        await server.dispose()


def upgrade_to_head(database_url: str) -> None:
    """Apply every Alembic migration. Runs its own event loop: call it from sync code."""
    config = Config(ALEMBIC_INI)
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


async def create_first_superuser(settings: Settings) -> bool:
    """Create FIRST_SUPERUSER_EMAIL unless an account already has that e-mail.

    Returns True when the account was created. An existing account is left as it
    is: its password may have been changed since.
    """
    password = settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()
    if not password:
        raise ValueError("FIRST_SUPERUSER_PASSWORD must be set to create the first superuser")
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if await get_by_email(session, settings.FIRST_SUPERUSER_EMAIL):
                return False
            await create_user(session, settings.FIRST_SUPERUSER_EMAIL, password, is_superuser=True)
            return True
    finally:
        await engine.dispose()


async def migrate(settings: Settings) -> None:
    database_url = settings.POSTGRES_DATABASE_URL
    async with migration_lock(database_url):
        if await create_database_if_missing(database_url):
            print(f"Created database {make_url(database_url).database!r}")
        # Alembic runs an event loop of its own: on a thread, while this one holds the lock.
        await asyncio.to_thread(upgrade_to_head, database_url)
        if await create_first_superuser(settings):
            print(f"Created superuser {settings.FIRST_SUPERUSER_EMAIL}")


def main() -> None:
    asyncio.run(migrate(get_settings()))


if __name__ == "__main__":
    main()
