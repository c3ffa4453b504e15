"""The task engine: Celery tasks sent, awaited and followed for their owners,
from async code, without blocking the event loop or parking a thread.

The service knows it through these names only (README.md beside this file):

- `open_engine(EngineConfig(...))`: one TaskEngine per process;
- `wait()`, `submit()`: send a Celery signature (a task, a chain, a group, a
  chord) and wait for its result, or get the id to come back with;
- `status()`, `cancel()`, `tasks()`, `follow()`: what became of a task, for
  its owner only;
- `task_records`: the table the service's migrations create;
- the replies and errors below.
"""

from taskengine.config import EngineConfig
from taskengine.engine import TaskEngine, open_engine
from taskengine.errors import (
    BrokerUnavailableError,
    PostgresUnavailableError,
    RedisUnavailableError,
    ServiceUnavailableError,
    TaskEndedError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    TooManyFollowersError,
    TooManyTasksError,
)
from taskengine.records import task_records
from taskengine.replies import TaskError, TaskReply, TaskSummary

__all__ = [
    "BrokerUnavailableError",
    "EngineConfig",
    "PostgresUnavailableError",
    "RedisUnavailableError",
    "ServiceUnavailableError",
    "TaskEndedError",
    "TaskEngine",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskReply",
    "TaskSummary",
    "TaskTimeoutError",
    "TooManyFollowersError",
    "TooManyTasksError",
    "open_engine",
    "task_records",
]
