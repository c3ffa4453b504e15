"""Task records and ends written in batches over asyncpg (app/services/record_writer.py),
read back through the ORM: every column, the first end kept, one bad row alone."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from celery.canvas import Signature
from fastapi import FastAPI
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import make_transient_to_detached

from app.core.config import Settings
from app.core.db import DatabaseUnavailableError
from app.models import TaskRecord, User
from app.schemas.task import TaskError, TaskReply
from app.services.record_writer import APPLICATION_NAME, RecordWriter
from app.services.submissions import Submission


@pytest.fixture
async def writer(settings: Settings) -> AsyncIterator[RecordWriter]:
    records = RecordWriter(settings.POSTGRES_DATABASE_URL, 3.0, 5.0)
    yield records
    await records.close()


def new_record(owner_id: uuid.UUID, **columns: object) -> TaskRecord:
    now = datetime.now(UTC).replace(microsecond=0)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "name": "chord",
        "is_group": True,
        "answer_ids": ["a", "b"],
        "all_ids": ["a", "b", "c"],
        "status": "PENDING",
        "result": {"so far": [1, None, "x"]},
        "error_type": None,
        "error_message": None,
        "expires_at": now + timedelta(seconds=10),
        "revoked_at": now,
    }
    return TaskRecord(**{**values, **columns})


async def read(app: FastAPI, record_id: uuid.UUID) -> TaskRecord | None:
    async with app.state.sessionmaker() as session:
        found: TaskRecord | None = await session.scalar(
            select(TaskRecord).where(TaskRecord.id == record_id)
        )
        return found


COLUMNS = [
    "id", "owner_id", "name", "is_group", "answer_ids", "all_ids", "status", "result",
    "error_type", "error_message", "expires_at", "revoked_at",
]  # fmt: skip


@pytest.mark.parametrize("durable", [False, True], ids=["relaxed", "durable"])
async def test_every_column_of_a_new_record_is_written(
    app: FastAPI, writer: RecordWriter, user: User, durable: bool
) -> None:
    task = new_record(user.id)
    await writer.add(task, durable=durable)
    stored = await read(app, task.id)
    assert stored is not None
    assert {column: getattr(stored, column) for column in COLUMNS} == {
        column: getattr(task, column) for column in COLUMNS
    }
    assert stored.created_at is not None


async def test_a_recorded_task_is_read_without_the_database(
    writer: RecordWriter, user: User
) -> None:
    """After its write, a record is a detached row: what the task runner reads
    of it on a revocation or a failed publish must not need a lazy load."""
    submission = Submission(Signature("x"), uuid.uuid4(), False, ["a"], ["a"])
    pending = TaskReply(task_id=submission.task_id, status="PENDING")
    task = submission.record(user, "x", pending, datetime.now(UTC))
    await writer.add(task, durable=False)
    make_transient_to_detached(task)
    assert inspect(task).unloaded == {"created_at", "updated_at"}


async def test_an_end_is_kept_once_the_first_end_wins(
    app: FastAPI, writer: RecordWriter, user: User
) -> None:
    task = new_record(user.id, revoked_at=None)
    await writer.add(task, durable=False)
    failed = TaskReply(
        task_id=task.id, status="FAILURE", error=TaskError(type="ValueError", message="x" * 5000)
    )
    assert await writer.keep_end(task, failed)
    later = TaskReply(task_id=task.id, status="SUCCESS", result=[4, 4])
    assert await writer.keep_end(task, later)
    stored = await read(app, task.id)
    assert stored is not None
    assert (stored.status, stored.error_type) == ("FAILURE", "ValueError")
    assert stored.error_message == "x" * 2000  # cut to the column, as TaskRecord.keep does
    assert stored.result is None


async def test_rows_queued_together_share_a_statement_and_a_bad_one_fails_alone(
    app: FastAPI, writer: RecordWriter, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[int] = []
    records = writer._records
    execute = records.execute

    async def counted(statement: str, arguments: list[object]) -> None:
        statements.append(len(arguments[0]))  # rows in this statement
        await execute(statement, arguments)

    monkeypatch.setattr(records, "execute", counted)
    good = [new_record(user.id) for _ in range(9)]
    orphan = new_record(uuid.uuid4())  # no such owner: the foreign key refuses it
    outcomes = await asyncio.gather(
        *(writer.add(task, durable=False) for task in [*good[:4], orphan, *good[4:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes.pop(4), asyncpg.ForeignKeyViolationError)
    assert outcomes == [None] * 9
    # All ten at once, refused as a whole; then each alone.
    assert statements == [10] + [1] * 10
    for task in good:
        assert await read(app, task.id) is not None


async def test_a_connection_the_server_closed_is_replaced(
    app: FastAPI, writer: RecordWriter, user: User
) -> None:
    await writer.add(new_record(user.id), durable=False)
    records = writer._records._connection
    assert records is not None
    async with app.state.engine.connect() as connection:
        named = await connection.scalar(
            text("SELECT application_name FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": records.get_server_pid()},
        )
        assert named == APPLICATION_NAME
        await connection.scalar(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": records.get_server_pid()}
        )
    task = new_record(user.id)
    try:
        await writer.add(task, durable=False)
    except DatabaseUnavailableError:
        await writer.add(task, durable=False)  # the next write opens a new connection
    assert await read(app, task.id) is not None
