"""Task records written in batches over asyncpg (taskengine/records.py), against
the real PostgreSQL, read back with a connection of the tests' own: every
column, the first end kept, a NUL kept replaced, a lost connection replaced,
PostgreSQL out of reach."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from taskengine import PostgresUnavailableError
from taskengine.record_store import TaskRecords
from taskengine.records import ERROR_MESSAGE_LENGTH, TaskRecord
from taskengine.states import TaskError, TaskReply
from tests.engine.conftest import with_port
from tests.engine.support import stored_row

TIMEOUT = 2.0


@pytest.fixture
async def records(database: str) -> AsyncIterator[TaskRecords]:
    opened = TaskRecords(database, TIMEOUT, pool_size=2)
    await opened.open()
    yield opened
    await opened.close()


def new_record(owner_id: uuid.UUID, **fields: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "name": "chord",
        "is_group": True,
        "answer_ids": ["a", "b"],
        "all_ids": ["a", "b", "c"],
        "expires_at": datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10),
    }
    return TaskRecord(**{**values, **fields})


def failure(task_id: uuid.UUID, message: str = "bad input") -> TaskReply:
    error = TaskError(type="ValueError", message=message)
    return TaskReply(task_id=task_id, status="FAILURE", error=error)


@pytest.mark.parametrize("durable", [False, True], ids=["relaxed", "durable"])
async def test_every_column_of_a_new_record_is_written(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID, durable: bool
) -> None:
    task = new_record(owner, status="STARTED")
    before = await db.fetchval("SELECT now()")
    await records.add(task, durable=durable)
    stored = await stored_row(db, task.id)
    assert stored.pop("created_at") == stored.pop("updated_at")
    assert stored == {
        "id": task.id,
        "owner_id": owner,
        "name": "chord",
        "is_group": True,
        "answer_ids": json.dumps(["a", "b"]),
        "all_ids": json.dumps(["a", "b", "c"]),
        "status": "STARTED",
        "result": None,
        "error_type": None,
        "error_message": None,
        "expires_at": task.expires_at,
        "cancelled_at": None,
    }
    found = await records.find(owner, task.id)
    assert found is not None and found.created_at is not None
    assert found.created_at >= before
    assert found == TaskRecord(**{**vars_of(task), "created_at": found.created_at})


def vars_of(record: TaskRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


async def test_an_end_and_a_cancelling_are_written_and_read_back(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    task = new_record(owner)
    await records.add(task, durable=True)
    await records.mark_cancelled(task.id)
    ended = TaskReply(task_id=task.id, status="SUCCESS", result={"values": [1, None, "x"]})
    assert await records.keep_end(task.id, ended) == ended
    stored = await stored_row(db, task.id)
    assert (stored["status"], json.loads(stored["result"])) == ("SUCCESS", ended.result)
    assert stored["cancelled_at"] is not None
    assert stored["updated_at"] >= stored["cancelled_at"] > stored["created_at"]
    found = await records.find(owner, task.id)
    assert found is not None
    assert (found.status, found.result, found.cancelled_at) == (
        "SUCCESS",
        ended.result,
        stored["cancelled_at"],
    )
    assert found.reply() == ended


async def test_a_record_is_found_by_its_owner_only(records: TaskRecords, owner: uuid.UUID) -> None:
    task = new_record(owner)
    await records.add(task, durable=False)
    assert await records.find(uuid.uuid4(), task.id) is None
    assert await records.find(owner, uuid.uuid4()) is None
    assert [found.id for found in await records.find_many([task.id, uuid.uuid4()])] == [task.id]


async def test_the_first_end_wins_and_a_later_one_gets_it_back(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    task = new_record(owner)
    await records.add(task, durable=False)
    failed = failure(task.id, "x" * 5000)
    kept = await records.keep_end(task.id, failed)
    # Cut to the column: the end kept is the one everybody is told, its sender too.
    cut = TaskError(type="ValueError", message="x" * ERROR_MESSAGE_LENGTH)
    assert (kept.status, kept.error) == ("FAILURE", cut)
    later = TaskReply(task_id=task.id, status="SUCCESS", result=[4, 4])
    assert await records.keep_end(task.id, later) == kept
    stored = await stored_row(db, task.id)
    assert (stored["status"], stored["error_type"], stored["result"]) == (
        "FAILURE",
        "ValueError",
        "null",
    )
    assert stored["error_message"] == "x" * ERROR_MESSAGE_LENGTH


async def test_ends_of_one_task_in_one_batch_agree_on_the_one_kept(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """Two requests that conclude a task at once: both answer the end kept."""
    task = new_record(owner)
    await records.add(task, durable=False)
    success = TaskReply(task_id=task.id, status="SUCCESS", result="a")
    revoked = TaskReply(task_id=task.id, status="REVOKED")
    answers = await asyncio.gather(
        records.keep_end(task.id, success), records.keep_end(task.id, revoked)
    )
    stored = await stored_row(db, task.id)
    assert [answer.status for answer in answers] == [stored["status"]] * 2
    assert stored["status"] == "SUCCESS"  # queued first


async def test_the_end_of_a_record_that_is_gone_comes_back_unkept(
    records: TaskRecords,
) -> None:
    missing = uuid.uuid4()
    reply = TaskReply(task_id=missing, status="SUCCESS", result=1)
    assert await records.keep_end(missing, reply) == reply


async def test_an_error_with_a_nul_is_kept_with_the_others_of_its_batch(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """A task's error can say anything, and PostgreSQL's text refuses a NUL:
    it is kept replaced, so that no end can make its batch fail."""
    tasks = [new_record(owner) for _ in range(5)]
    await asyncio.gather(*(records.add(task, durable=False) for task in tasks))
    ends = [failure(task.id) for task in tasks]
    ends[2] = failure(tasks[2].id, "before\x00after")
    kept = await asyncio.gather(
        *(records.keep_end(task.id, end) for task, end in zip(tasks, ends, strict=True))
    )
    assert kept[2].error is not None and kept[2].error.message == "before\ufffdafter"
    assert kept[:2] + kept[3:] == ends[:2] + ends[3:]
    rows = [await stored_row(db, task.id) for task in tasks]
    assert [row["status"] for row in rows] == ["FAILURE"] * 5
    assert rows[2]["error_message"] == "before\ufffdafter"


async def test_records_queued_together_share_one_statement(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    tasks = [new_record(owner) for _ in range(10)]
    await asyncio.gather(*(records.add(task, durable=False) for task in tasks))
    created = await db.fetch(
        "SELECT DISTINCT created_at FROM task_records WHERE owner_id = $1", owner
    )
    assert len(created) == 1  # now() of one transaction


async def test_a_connection_the_server_closed_is_replaced(
    records: TaskRecords, db: asyncpg.Connection, owner: uuid.UUID
) -> None:
    """Closed by the server (a restart, an idle timeout, an administrator): a
    request that meets it while it closes is told PostgreSQL is unavailable,
    never anything else, and the next request gets a new connection. Several
    rounds, for the request to meet the connection at several moments of its
    closing."""
    task = new_record(owner)
    await records.add(task, durable=False)
    for round_ in range(8):
        terminated = await db.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'taskengine'"
        )
        assert terminated, "the engine had no connection to close"
        await asyncio.sleep(0.01 * round_)
        with contextlib.suppress(PostgresUnavailableError):  # it met the connection closing
            await records.find(owner, task.id)
        found = await records.find(owner, task.id)
        assert found is not None and found.id == task.id


async def test_postgres_out_of_reach_is_unavailable_within_the_timeout(
    database: str, closed_port: int, owner: uuid.UUID
) -> None:
    away = TaskRecords(with_port(database, closed_port), timeout=1.0, pool_size=2)
    await away.open()  # no connection yet: a service starts while PostgreSQL is away
    try:
        started = time.monotonic()
        with pytest.raises(PostgresUnavailableError):
            await away.find(owner, uuid.uuid4())
        with pytest.raises(PostgresUnavailableError):
            await away.add(new_record(owner), durable=True)
        assert time.monotonic() - started < 2 * 1.0 + 1
    finally:
        await away.close()
