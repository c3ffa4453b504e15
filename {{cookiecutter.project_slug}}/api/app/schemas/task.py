import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

# Bounds that keep one request from flooding the queue or a worker.
MAX_INTEGERS = 1000
MAX_WORKFLOW_SIZE = 50
# Below the worker's default soft time limit (TASK_SOFT_TIME_LIMIT, 60 s).
MAX_SECONDS = 50
MAX_STEPS = 100


# Each body's fields are the keyword arguments of its Catalog method.


class IntegerIn(BaseModel):
    integer: int


class IntegersIn(BaseModel):
    integers: Annotated[list[int], Field(min_length=1, max_length=MAX_INTEGERS)]


class LongRunningIn(BaseModel):
    seconds: Annotated[float, Field(gt=0, le=MAX_SECONDS)]
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] = 10


class WorkflowIn(BaseModel):
    integer: int
    size: Annotated[int, Field(ge=1, le=MAX_WORKFLOW_SIZE)]


class TaskError(BaseModel):
    type: str
    message: str


class TaskReply(BaseModel):
    task_id: uuid.UUID
    # PENDING, STARTED, PROGRESS, SUCCESS, FAILURE or REVOKED
    status: str
    # The value once SUCCESS (a list for a group), progress while PROGRESS.
    result: Any = None
    error: TaskError | None = None


class TaskAccepted(BaseModel):
    task_id: uuid.UUID


class TaskSummary(BaseModel):
    task_id: uuid.UUID
    name: str
    status: str
    created_at: datetime
