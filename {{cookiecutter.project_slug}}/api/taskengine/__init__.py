"""The task engine: Celery tasks sent, awaited and followed for their owners, from
async code. What a service calls is below; README.md beside this file tells how."""

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
