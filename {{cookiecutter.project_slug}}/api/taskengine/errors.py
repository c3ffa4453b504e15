"""What the engine raises. A service answers each with its own status code."""

import contextlib
import uuid
from collections.abc import Iterator

from taskengine.states import TaskReply


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


class LimitError(Exception):
    """The owner holds `limit` of something at once already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} at once already")
        self.limit = limit


class TooManyTasksError(LimitError):
    """The owner has `limit` tasks in flight already."""


class TooManyFollowersError(LimitError):
    """The owner follows `limit` tasks at once already."""


class ReplyError(Exception):
    """What happened to the task, as `reply` says."""

    def __init__(self, reply: TaskReply) -> None:
        super().__init__(f"Task {reply.task_id} is {reply.status}")
        self.reply = reply


class TaskEndedError(ReplyError):
    """The task ended already: too late to cancel it."""


class TaskFailedError(ReplyError):
    """A waited task ended without a result: it failed, or was cancelled meanwhile."""


class TaskTimeoutError(Exception):
    """A waited task did not end in time; it was cancelled."""

    def __init__(self, task_id: uuid.UUID, seconds: float) -> None:
        super().__init__(f"Task {task_id} did not finish within {seconds}s and was revoked")
        self.task_id = task_id
