"""Task records: who sent which task, and how it ended (the table is in the
service's migrations), read as frozen TaskRecords that requests share."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import JSON, Boolean, Column, DateTime, MetaData, String, Table, Uuid, func

from taskengine.states import TaskError, TaskReply, TaskSummary

ERROR_TYPE_LENGTH = 200
ERROR_MESSAGE_LENGTH = 2000

metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})
task_records = Table(
    "task_records",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("is_group", Boolean, nullable=False),
    Column("answer_ids", JSON, nullable=False),
    Column("all_ids", JSON, nullable=False),
    # The last state seen; once final, the answer is kept here and Redis forgets it.
    Column("status", String(20), nullable=False),
    Column("result", JSON),
    Column("error_type", String(ERROR_TYPE_LENGTH)),
    Column("error_message", String(ERROR_MESSAGE_LENGTH)),
    # When workers stop taking its tasks from the queue; long after, LOST.
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # When it was cancelled; workers drop its tasks from then on.
    Column("cancelled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    is_group: bool
    answer_ids: list[str]
    all_ids: list[str]
    expires_at: datetime
    status: str = "PENDING"
    result: Any = None
    error: TaskError | None = None
    cancelled_at: datetime | None = None
    created_at: datetime | None = None

    def reply(self) -> TaskReply:
        return TaskReply(task_id=self.id, status=self.status, result=self.result, error=self.error)

    def summary(self) -> TaskSummary:
        assert self.created_at is not None  # read from the table
        return TaskSummary(
            task_id=self.id, name=self.name, status=self.status, created_at=self.created_at
        )


def from_row(row: asyncpg.Record) -> TaskRecord:
    error_type = row["error_type"]
    error = TaskError(type=error_type, message=row["error_message"] or "") if error_type else None
    return TaskRecord(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        is_group=row["is_group"],
        answer_ids=json.loads(row["answer_ids"]),
        all_ids=json.loads(row["all_ids"]),
        expires_at=row["expires_at"],
        status=row["status"],
        result=None if row["result"] is None else json.loads(row["result"]),
        error=error,
        cancelled_at=row["cancelled_at"],
        created_at=row["created_at"],
    )


def as_kept(reply: TaskReply) -> TaskReply:
    """The reply as its record keeps it, and so as every reader sees it: its
    error as text PostgreSQL holds (a task's error can say anything)."""
    if reply.error is None:
        return reply
    error = TaskError(
        type=text_column(reply.error.type, ERROR_TYPE_LENGTH),
        message=text_column(reply.error.message, ERROR_MESSAGE_LENGTH),
    )
    return reply.model_copy(update={"error": error})


def text_column(text: str, length: int) -> str:
    """No NUL character (PostgreSQL's text holds none), at most `length` long."""
    return text.replace("\x00", "\ufffd")[:length]


def end_row(task_id: uuid.UUID, kept: TaskReply) -> tuple[object, ...]:
    """KEEP_ENDS's values of one end (as_kept)."""
    error_type, message = (kept.error.type, kept.error.message) if kept.error else (None, None)
    return task_id, kept.status, json.dumps(kept.result), error_type, message
