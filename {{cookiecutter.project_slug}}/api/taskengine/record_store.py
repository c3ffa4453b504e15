"""The task records in PostgreSQL, over a small asyncpg pool of the engine's own.
A task's two writes (its record, its end) are batched (batches.py), a statement
over arrays through asyncpg: 0.07 ms of CPU a write, 1.2 through SQLAlchemy's
ORM. A write that need not wait for the log flush says so in its statement."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from functools import partial

import asyncpg

from taskengine.batches import Batches
from taskengine.errors import PostgresUnavailableError
from taskengine.records import TaskRecord, as_kept, end_row, from_row, task_records
from taskengine.states import FINAL, TaskReply

COLUMNS = ", ".join(column.name for column in task_records.columns)

# Joined to a statement, this makes its commit skip the wait for the log
# flush: `true` limits the setting to the statement's own transaction.
RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
INSERT = """
INSERT INTO task_records (id, owner_id, name, is_group, answer_ids, all_ids, status, expires_at)
SELECT given.* FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::json[], $6::json[], $7::text[],
    $8::timestamptz[]
) AS given
"""
# Each record's end, unless it has one already: the first end kept is the one
# everybody sees, and the records that had one answer it.
KEEP_ENDS = f"""
WITH ended AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::json[], $4::text[], $5::text[])
        AS ended (id, status, result, error_type, error_message)
), kept AS (
    UPDATE task_records AS task
    SET status = ended.status, result = ended.result, error_type = ended.error_type,
        error_message = ended.error_message, updated_at = now()
    FROM ended, {RELAXED}
    WHERE task.id = ended.id AND task.status <> ALL($6::text[])
    RETURNING task.id
)
SELECT {COLUMNS} FROM task_records
WHERE id = ANY($1::uuid[]) AND id NOT IN (SELECT id FROM kept)
"""
PAGE = f"""
SELECT {COLUMNS} FROM task_records WHERE owner_id = $1
ORDER BY created_at DESC, id OFFSET $2 LIMIT $3
"""
FINAL_STATES = sorted(FINAL)
# asyncpg's errors that say PostgreSQL is out of reach, not that a statement is wrong.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A connection the server is closing may still look open, in a state that
    # refuses the next statement.
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
)


class TaskRecords:
    def __init__(self, dsn: str, timeout: float, pool_size: int) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._relaxed = Batches(partial(self._insert, f"{INSERT}, {RELAXED}"))
        self._durable = Batches(partial(self._insert, INSERT))
        self._ends = Batches(self._keep_ends)

    async def open(self) -> None:
        # No connection yet (min_size=0): the service starts while PostgreSQL is away.
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._pool_size,
            timeout=self._timeout,
            command_timeout=self._timeout,
            # Who this is, in pg_stat_activity.
            server_settings={"application_name": "taskengine"},
            # The engine leaves no session state (no LISTEN, no cursor, settings
            # per transaction): no reset query, a round trip less per statement.
            reset=nothing_to_reset,
        )

    async def close(self) -> None:
        for batches in (self._relaxed, self._durable, self._ends):
            await batches.close()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()

    def add(self, record: TaskRecord, *, durable: bool) -> "asyncio.Future[None]":
        """Queue a new record, committed when the future ends. Durable: after the log
        flush (a client comes back for it); else a crash in that instant may lose
        the record of a task whose answer its client got, never corrupt anything."""
        return (self._durable if durable else self._relaxed).add(record)

    async def keep_end(self, task_id: uuid.UUID, reply: TaskReply) -> TaskReply:
        """Keep the task's end unless its record has one; the end kept (the reply
        itself for a record that is gone)."""
        return await self._ends.add((task_id, reply))

    async def find(self, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskRecord | None:
        """The owner's record: one query whether it is missing or another's."""
        query = f"SELECT {COLUMNS} FROM task_records WHERE id = $1 AND owner_id = $2"
        async with self._connection() as connection:
            row = await connection.fetchrow(query, task_id, owner_id)
        return from_row(row) if row else None

    async def find_many(self, task_ids: Sequence[uuid.UUID]) -> list[TaskRecord]:
        query = f"SELECT {COLUMNS} FROM task_records WHERE id = ANY($1::uuid[])"
        async with self._connection() as connection:
            rows = await connection.fetch(query, list(task_ids))
        return [from_row(row) for row in rows]

    async def page(
        self, owner_id: uuid.UUID, offset: int, limit: int
    ) -> tuple[int, list[TaskRecord]]:
        async with self._connection() as connection:
            total = await connection.fetchval(
                "SELECT count(*) FROM task_records WHERE owner_id = $1", owner_id
            )
            rows = await connection.fetch(PAGE, owner_id, offset, limit)
        return total, [from_row(row) for row in rows]

    async def mark_cancelled(self, task_id: uuid.UUID) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "UPDATE task_records SET cancelled_at = now(), updated_at = now()"
                " WHERE id = $1 AND cancelled_at IS NULL",
                task_id,
            )

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; PostgresUnavailableError when PostgreSQL is out
        of reach or too slow, the server's own error for a refused statement."""
        assert self._pool is not None, "TaskRecords.open() first"
        try:
            async with self._pool.acquire(timeout=self._timeout) as connection:
                yield connection
        except UNREACHABLE as error:
            raise PostgresUnavailableError(repr(error)) from error

    async def _insert(self, statement: str, records: list[TaskRecord]) -> list[None]:
        rows = [
            (
                record.id,
                record.owner_id,
                record.name,
                record.is_group,
                json.dumps(record.answer_ids),
                json.dumps(record.all_ids),
                record.status,
                record.expires_at,
            )
            for record in records
        ]
        async with self._connection() as connection:
            await connection.execute(statement, *columns(rows))
        return [None] * len(records)

    async def _keep_ends(self, ends: list[tuple[uuid.UUID, TaskReply]]) -> list[TaskReply]:
        # One end per record: an UPDATE that several rows match applies any
        # one of them, and the others would be told theirs was kept.
        first: dict[uuid.UUID, TaskReply] = {}
        for task_id, reply in ends:
            first.setdefault(task_id, as_kept(reply))
        rows = [end_row(task_id, reply) for task_id, reply in first.items()]
        async with self._connection() as connection:
            had_one = await connection.fetch(KEEP_ENDS, *columns(rows), FINAL_STATES)
        earlier = {row["id"]: from_row(row).reply() for row in had_one}
        return [earlier.get(task_id, first[task_id]) for task_id, _ in ends]


async def nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Back to the pool as it is; asyncpg still rolls back a transaction left open."""


def columns(rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    """Rows turned into one list per column, as unnest() takes them."""
    return [list(column) for column in zip(*rows, strict=True)]
