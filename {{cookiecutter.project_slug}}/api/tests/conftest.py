"""Fixtures: a fresh PostgreSQL database for the run, dropped at the end.

The database is created next to the configured one, on the same server, so the
tests never touch the data of the service they test.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import get_settings

CONFIGURED_URL = make_url(get_settings().POSTGRES_DATABASE_URL)
TEST_DATABASE = f"{CONFIGURED_URL.database}_test_{uuid.uuid4().hex[:8]}"
TEST_DATABASE_URL = CONFIGURED_URL.set(database=TEST_DATABASE).render_as_string(hide_password=False)
os.environ["POSTGRES_DATABASE_URL"] = TEST_DATABASE_URL
os.environ["ENVIRONMENT"] = "test"
get_settings.cache_clear()

from app.main import create_app  # noqa: E402  (settings must be set first)
from app.migrate import create_database_if_missing, upgrade_to_head  # noqa: E402


def postgres_problem() -> str | None:
    host, port = CONFIGURED_URL.host or "127.0.0.1", CONFIGURED_URL.port or 5432
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        return f"PostgreSQL (POSTGRES_DATABASE_URL) is not answering at {host}:{port} ({error})"
    return None


async def drop_database(name: str) -> None:
    server = create_async_engine(
        CONFIGURED_URL.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with server.connect() as connection:
            quoted = connection.dialect.identifier_preparer.quote(name)
            await connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        await server.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Create and migrate the run's database; drop it when the run ends."""
    problem = postgres_problem()
    if problem:
        pytest.exit(f"Cannot test the API: {problem}", returncode=3)
    asyncio.run(create_database_if_missing(TEST_DATABASE_URL))
    try:
        upgrade_to_head(TEST_DATABASE_URL)
        yield TEST_DATABASE_URL
    finally:
        asyncio.run(drop_database(TEST_DATABASE))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncClient]:
    app = create_app()
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
