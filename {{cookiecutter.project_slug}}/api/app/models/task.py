"""Who submitted which task, and what became of it."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps
from app.schemas.task import TaskError, TaskReply

ERROR_TYPE_LENGTH = 200
ERROR_MESSAGE_LENGTH = 2000


def kept_columns(reply: TaskReply) -> dict[str, Any]:
    """A reply's state, result and error, as a record keeps them. A task's
    error can say anything: cut to what the columns hold."""
    return {
        "status": reply.status,
        "result": reply.result,
        "error_type": reply.error.type[:ERROR_TYPE_LENGTH] if reply.error else None,
        "error_message": reply.error.message[:ERROR_MESSAGE_LENGTH] if reply.error else None,
    }


class TaskRecord(Timestamps, Base):
    __tablename__ = "task_records"

    # The id the caller got: a task's, a chain's last task's, a group's or a
    # chord's body's.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # What was asked for, as the route names it: "integer-multiplication", "chord"...
    name: Mapped[str] = mapped_column(String(100))
    # A group answers a list, one item per task; anything else one value.
    is_group: Mapped[bool] = mapped_column(default=False)
    # Tasks whose results make the answer, and every task the request created
    # (to revoke or forget them all).
    answer_ids: Mapped[list[str]] = mapped_column(JSON)
    # The column's name predates the attribute's; renaming it needs no migration.
    all_ids: Mapped[list[str]] = mapped_column("related_ids", JSON)
    # Last state seen; once final, the answer is kept here and Redis forgets it.
    status: Mapped[str] = mapped_column(String(20), default="PENDING")
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    error_type: Mapped[str | None] = mapped_column(String(ERROR_TYPE_LENGTH), default=None)
    error_message: Mapped[str | None] = mapped_column(String(ERROR_MESSAGE_LENGTH), default=None)
    # When a worker stops taking the tasks from the queue (their `expires`);
    # long after it, a record without a final state is declared LOST.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # When the API revoked the tasks (a DELETE, a wait given up, a publish
    # that failed half-way); workers drop them from then on.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    def keep(self, reply: TaskReply) -> None:
        """Store the reply's state, result and error as this task's last seen."""
        for column, value in kept_columns(reply).items():
            setattr(self, column, value)

    def reply(self) -> TaskReply:
        """The stored state as the API answers it."""
        error = (
            TaskError(type=self.error_type, message=self.error_message or "")
            if self.error_type
            else None
        )
        return TaskReply(task_id=self.id, status=self.status, result=self.result, error=error)
