import uuid

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import create_database_if_missing, upgrade_to_head
from tests.conftest import drop_database


async def database_exists(database_url: str, name: str) -> bool:
    server = create_async_engine(make_url(database_url).set(database="postgres"))
    try:
        async with server.connect() as connection:
            found = await connection.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                {"name": name},
            )
            return bool(found)
    finally:
        await server.dispose()


async def test_migrate_creates_a_missing_database_once(database_url: str) -> None:
    name = f"{make_url(database_url).database}_m{uuid.uuid4().hex[:6]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        assert not await database_exists(database_url, name)
        assert await create_database_if_missing(url) is True
        assert await database_exists(database_url, name)
        assert await create_database_if_missing(url) is False
    finally:
        await drop_database(name)


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade_to_head(database_url)
    upgrade_to_head(database_url)
