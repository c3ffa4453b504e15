"""`python -m commands.migrate`: create the database if it is missing, migrate it,
and create the first superuser from the settings.

`make migrate` runs this; it is safe to run again at any time.
"""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.services.users import create_user, get_by_email

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


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


def main() -> None:
    settings = get_settings()
    database_url = settings.POSTGRES_DATABASE_URL
    if asyncio.run(create_database_if_missing(database_url)):
        print(f"Created database {make_url(database_url).database!r}")
    upgrade_to_head(database_url)
    if asyncio.run(create_first_superuser(settings)):
        print(f"Created superuser {settings.FIRST_SUPERUSER_EMAIL}")


if __name__ == "__main__":
    main()
