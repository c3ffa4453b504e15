import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import Settings
from app.core.security import password_hash
from app.models import Base, User
from commands.migrate import (
    ALEMBIC_INI,
    create_database_if_missing,
    create_first_superuser,
    upgrade_to_head,
)
from taskengine import task_records
from testkit import database_beside, drop_database
from testkit.migrations import migrated_database


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
        await drop_database(url)


async def applied_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    # A database of its own: the run's database is already at head.
    with migrated_database(database_beside(database_url, "upgrade")) as fresh:
        assert asyncio.run(applied_revision(fresh)) == head
        upgrade_to_head(fresh)  # the second run finds nothing to do, and fails nothing
        assert asyncio.run(applied_revision(fresh)) == head


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    def differences(connection):  # type: ignore[no-untyped-def]
        every_table = [Base.metadata, task_records.metadata]
        return compare_metadata(MigrationContext.configure(connection), every_table)

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_first_superuser_is_created_once(settings: Settings, engine: AsyncEngine) -> None:
    assert await create_first_superuser(settings) is True
    assert await create_first_superuser(settings) is False
    async with engine.connect() as connection:
        rows = (await connection.execute(select(User.__table__))).all()
        count = await connection.scalar(select(func.count()).select_from(User))
    assert count == 1
    (row,) = rows
    assert row.email == settings.FIRST_SUPERUSER_EMAIL
    assert row.is_superuser and row.is_active
    password = settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()
    assert password_hash.verify(password, row.hashed_password)


# As many as the replicas whose init containers start at once.
AT_ONCE = 4


def test_migrate_run_by_several_processes_at_once_does_everything_once(
    database_url: str,
) -> None:
    """`python -m commands.migrate` started AT_ONCE times together on a database
    that does not exist yet: every run ends well, one creates the database, all
    find it at head, one creates the superuser (the others wait for its lock)."""
    name = f"{make_url(database_url).database}_c{uuid.uuid4().hex[:6]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    environment = {**os.environ, "POSTGRES_DATABASE_URL": url}
    api_root = Path(ALEMBIC_INI).parent
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "commands.migrate"],
            cwd=api_root,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(AT_ONCE)
    ]
    try:
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0] * AT_ONCE, "\n".join(outputs)
        assert sum("Created database" in output for output in outputs) == 1, outputs
        assert sum("Created superuser" in output for output in outputs) == 1, outputs
        head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
        assert asyncio.run(applied_revision(url)) == head
    finally:
        for run in runs:
            run.kill()
            run.wait()
        asyncio.run(drop_database(url))
