"""What the engine raises. A service answers each with its own status code."""

import contextlib
import uuid
from collections.abc import Iterator

from taskengine.replies import TaskReply


class ServiceUnavailableError(Exception):
    """A service the engine needs did not answer in time: try again later."""


class BrokerUnavailableError(ServiceUnavailableError):
    """A message could not be handed to RabbitMQ within the publish timeout."""


class RedisUnavailableError(ServiceUnavailableError):
    """Redis, which holds the results, revocations and counts, did not answer."""


class PostgresUnavailableError(ServiceUnavailableError):
    """PostgreSQL, which holds the task records, did not answer."""


@contextlib.contextmanager
def redis_unavailable() -> Iterator[None]:
    """The Redis commands' errors within as RedisUnavailableError (redis raises many types)."""
    try:
        yield
    except Exception as error:
        raise RedisUnavailableError(repr(error)) from error


class TaskNotFoundError(Exception):
    """No task of this owner has this id (another owner's task included)."""


class TooManyTasksError(Exception):
    """The owner has `limit` tasks in flight already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} tasks in flight already")
        self.limit = limit


class TooManyFollowersError(Exception):
    """The owner follows `limit` tasks at once already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} tasks followed already")
        self.limit = limit


class TaskEndedError(Exception):
    """The task ended already, as the reply says: too late to cancel it."""

    def __init__(self, reply: TaskReply) -> None:
        super().__init__(f"Task {reply.task_id} already {reply.status}")
        self.reply = reply


class TaskFailedError(Exception):
    """A waited task ended without a result: it failed, or was cancelled meanwhile."""

    def __init__(self, reply: TaskReply) -> None:
        super().__init__(f"Task {reply.task_id} ended {reply.status}")
        self.reply = reply


class TaskTimeoutError(Exception):
    """A waited task did not end in time; it was cancelled."""

    def __init__(self, task_id: uuid.UUID, seconds: float) -> None:
        super().__init__(f"Task {task_id} did not finish within {seconds}s and was revoked")
        self.task_id = task_id
