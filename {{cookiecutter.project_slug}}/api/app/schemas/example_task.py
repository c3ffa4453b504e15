"""Bodies of the example tasks' endpoints."""

from typing import Annotated

from pydantic import BaseModel, Field, StrictFloat, StrictInt

# Bounds that keep one request from flooding the queue or a worker.
MAX_INTEGERS = 1000
MAX_WORKFLOW_SIZE = 50
# Below the worker's default soft time limit (TASK_SOFT_TIME_LIMIT, 60 s).
MAX_SECONDS = 50
MAX_STEPS = 100
# What a JSON client holds exactly (JavaScript's safe integers); doubled 51 times
# by the longest chain, still a small Python int.
MAX_TASK_INTEGER = 2**53 - 1

# Strict: a boolean or a numeric string is refused where an integer is
# documented (the worker refuses booleans too).
TaskInteger = Annotated[StrictInt, Field(ge=-MAX_TASK_INTEGER, le=MAX_TASK_INTEGER)]


class IntegerIn(BaseModel):
    integer: TaskInteger


class IntegersIn(BaseModel):
    integers: Annotated[list[TaskInteger], Field(min_length=1, max_length=MAX_INTEGERS)]


class LongRunningIn(BaseModel):
    # A JSON number, integer or not; never NaN or infinite.
    seconds: Annotated[StrictFloat | StrictInt, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
    steps: Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)] = 10


class WorkflowIn(BaseModel):
    integer: TaskInteger
    size: Annotated[StrictInt, Field(ge=1, le=MAX_WORKFLOW_SIZE)]
