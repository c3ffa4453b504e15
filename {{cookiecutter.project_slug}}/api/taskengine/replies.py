"""What the engine answers about a task: the bodies a service returns as they are."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class TaskError(BaseModel):
    """The exception a task raised, by type and message; never its traceback."""

    type: str
    message: str


class TaskReply(BaseModel):
    task_id: uuid.UUID
    # PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, REVOKED or LOST
    status: str
    # The value once SUCCESS (a list for a group), progress while PROGRESS.
    result: Any = None
    error: TaskError | None = None


class TaskSummary(BaseModel):
    task_id: uuid.UUID
    # What was asked for, as the service named it when it sent the task.
    name: str
    status: str
    created_at: datetime
