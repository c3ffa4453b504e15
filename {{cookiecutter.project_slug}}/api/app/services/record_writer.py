"""Task records written in batches, over PostgreSQL connections of their own.

Every task costs two writes: its record, before it is sent, and its end, once
known. Through the ORM, with a transaction each, they took more of the API's
CPU than anything else a task request does: about 1.2 ms each, 0.5 through
SQLAlchemy's Core, 0.07 through asyncpg with the setting below (measured one
write at a time, CPU of the process). Here:

- a request queues its row, and rows queued meanwhile are written together
  (app/core/batches.py): at one request at a time a batch is one row, under
  load dozens;
- a batch is one prepared statement over arrays (`unnest`), sent with
  asyncpg itself, on two connections of its own, named task-record-writer in
  pg_stat_activity: one for new records, one for ends, so that neither
  queues behind the other;
- a write that need not wait for PostgreSQL's log flush says so inside the
  statement (`set_config('synchronous_commit', 'off', true)`): one round trip
  instead of four for BEGIN, SET LOCAL, the statement and COMMIT.

The statements name the table's columns: a migration that changes them
changes these too (tests/test_record_writer.py writes and reads back each
column).
"""

import asyncio
import json
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy import make_url

from app.core.batches import Batches
from app.core.db import DatabaseUnavailableError, is_unavailable
from app.models import TaskRecord
from app.models.task import kept_columns
from app.schemas.task import TaskReply
from app.services.task_states import FINAL

logger = logging.getLogger(__name__)

# Joined to a statement, this makes its commit skip the wait for the log
# flush: `true` limits the setting to the statement's own transaction.
RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"

INSERT = """
INSERT INTO task_records (
    id, owner_id, name, is_group, answer_ids, related_ids, status, result,
    error_type, error_message, expires_at, revoked_at
)
SELECT given.* FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::json[], $6::json[], $7::text[],
    $8::json[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[]
) AS given
"""
INSERT_RELAXED = f"{INSERT}, {RELAXED}"

# Each record's end, unless it already has one: a reader or a revocation may
# have kept an end first, and the first end kept is the one everybody sees.
KEEP_ENDS = f"""
UPDATE task_records AS task
SET status = ended.status, result = ended.result, error_type = ended.error_type,
    error_message = ended.error_message, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::json[], $4::text[], $5::text[])
    AS ended (id, status, result, error_type, error_message),
    {RELAXED}
WHERE task.id = ended.id AND task.status <> ALL($6::text[])
"""
FINAL_STATES = sorted(FINAL)
APPLICATION_NAME = "task-record-writer"


class RecordWriter:
    """New task records, and the ends of tasks, written in batches."""

    def __init__(
        self,
        database_url: str,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        # Two connections: new records do not queue behind ends, nor ends
        # behind new records (under load, a statement waits for the one
        # before it on its connection).
        self._records = OwnConnection(database_url, connect_timeout, command_timeout)
        self._ends_line = OwnConnection(database_url, connect_timeout, command_timeout)
        # A record whose owner was deleted meanwhile fails alone.
        self._relaxed = Batches(
            partial(self._insert, INSERT_RELAXED), one_by_one_after=is_about_a_row
        )
        self._durable = Batches(partial(self._insert, INSERT), one_by_one_after=is_about_a_row)
        self._ends = Batches(self._keep_ends, one_by_one_after=is_about_a_row)

    def add(self, task: TaskRecord, *, durable: bool) -> "asyncio.Future[None]":
        """Queue a new record; the future ends once it is committed. Durable:
        the commit waits for PostgreSQL's log flush (a client comes back for
        it later). Otherwise not: a database crash in that instant could lose
        the record of a task whose answer the client got anyway, never
        corrupt anything."""
        batches = self._durable if durable else self._relaxed
        return batches.add(task)

    async def keep_end(self, task: TaskRecord, reply: TaskReply) -> bool:
        """Keep a task's end in its record, so that the list of tasks shows it
        as soon as its answer is given; whether it was kept. Never raises:
        the answer is known already, and until its end is kept, readers find
        it in Redis."""
        keeping = self._ends.add((task, reply))
        keeping.add_done_callback(log_unkept_end)
        # asyncio.wait neither raises the write's error (logged by _end_kept)
        # nor cancels the write when the request goes away.
        await asyncio.wait([keeping])
        return not keeping.cancelled() and keeping.exception() is None

    async def close(self) -> None:
        """Write what is queued, then close the connections."""
        for batches in (self._relaxed, self._durable, self._ends):
            await batches.close()
        await self._records.close()
        await self._ends_line.close()

    async def _insert(self, statement: str, tasks: list[TaskRecord]) -> None:
        await self._records.execute(statement, columns(record_row(task) for task in tasks))

    async def _keep_ends(self, ends: list[tuple[TaskRecord, TaskReply]]) -> None:
        rows = columns(end_row(task, reply) for task, reply in ends)
        await self._ends_line.execute(KEEP_ENDS, [*rows, FINAL_STATES])


class OwnConnection:
    """One asyncpg connection, one statement at a time: opened on first use,
    and again after it was lost."""

    def __init__(self, database_url: str, connect_timeout: float, command_timeout: float) -> None:
        # SQLAlchemy's URL names its driver: asyncpg wants plain postgresql://.
        self.dsn = make_url(database_url).set(drivername="postgresql")
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._connection: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()

    async def execute(self, statement: str, arguments: Sequence[object]) -> None:
        """The server's error when it refused the statement itself (a row that
        breaks a constraint); otherwise DatabaseUnavailableError, and the next
        statement gets a new connection: whatever else went wrong (PostgreSQL
        out of reach, a timeout, a connection the server ended, which asyncpg
        may find in an unexpected state) leaves this one unfit to use."""
        try:
            async with self._turn:
                connection = await self._connect()
                await connection.execute(statement, *arguments)
        except Exception as error:
            if isinstance(error, asyncpg.PostgresError) and not is_unavailable(error):
                raise
            self._drop()
            raise DatabaseUnavailableError from error

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close(timeout=self.command_timeout)
            except Exception:  # PostgreSQL out of reach: nothing to say goodbye to
                connection.terminate()

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(
                self.dsn.render_as_string(hide_password=False),
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                # Who this is, in pg_stat_activity.
                server_settings={"application_name": APPLICATION_NAME},
            )
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


def log_unkept_end(keeping: "asyncio.Future[None]") -> None:
    if not keeping.cancelled() and keeping.exception() is not None:
        # The record stays PENDING; whoever reads it next keeps the end.
        logger.warning("A task's end was not kept: %r", keeping.exception())


def is_about_a_row(error: Exception) -> bool:
    return not isinstance(error, DatabaseUnavailableError)


def columns(rows: Any) -> list[list[object]]:
    """Rows turned into one list per column, as unnest() takes them."""
    return [list(column) for column in zip(*rows, strict=True)]


def record_row(task: TaskRecord) -> tuple[object, ...]:
    """A new record's values, in INSERT's order (created_at and updated_at:
    the server's now())."""
    return (
        task.id,
        task.owner_id,
        task.name,
        task.is_group,
        json.dumps(task.answer_ids),
        json.dumps(task.all_ids),
        task.status,
        json.dumps(task.result),
        task.error_type,
        task.error_message,
        task.expires_at,
        task.revoked_at,
    )


def end_row(task: TaskRecord, reply: TaskReply) -> tuple[object, ...]:
    """KEEP_ENDS's values of one record: its id, and what the reply sets."""
    kept = kept_columns(reply)
    return (
        task.id,
        kept["status"],
        json.dumps(kept["result"]),
        kept["error_type"],
        kept["error_message"],
    )
