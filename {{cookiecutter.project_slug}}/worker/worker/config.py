"""Settings of the worker, read from the environment and the project's .env file."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

# Prefix of every task name and the default queue and node name: producers know
# the tasks by these names alone, so they must not change with the environment.
WORKER_NAME = "{{ cookiecutter.worker_name }}"

# Chosen when the project was rendered. Pickle lets a message run code in the
# worker, so only a trusted network may reach a broker that carries it.
TASK_SERIALIZER = "{{ cookiecutter.task_serializer }}"
# JSON stays accepted for Celery's own control and event messages.
ACCEPT_CONTENT = sorted({TASK_SERIALIZER, "json"})

# Chosen when the project was rendered, like the API's (worker/queues.py).
QUEUE_TYPE = "{{ cookiecutter.queue_type }}"

# worker/worker/config.py -> the rendered project's root, where .env lives.
ENV_FILE = Path(__file__).resolve().parents[2] / ".env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    CELERY_BROKER_URL: str = "amqp://guest:guest@127.0.0.1:5672//"
    CELERY_RESULT_BACKEND_URL: str = "redis://127.0.0.1:6379/0"
    CELERY_TASK_QUEUE: str = WORKER_NAME
    CELERY_LONG_TASK_QUEUE: str = WORKER_NAME + "-long"
    # Which queue this worker serves: the short tasks' (CELERY_TASK_QUEUE), or
    # the long ones' (CELERY_LONG_TASK_QUEUE) as `make worker-long` does, so
    # that long work never holds the processes short tasks need.
    WORKER_CONSUMES: Literal["short", "long"] = "short"
    # Seconds before SoftTimeLimitExceeded is raised inside a task, then before
    # the process running it is killed.
    TASK_SOFT_TIME_LIMIT: int = 60
    TASK_TIME_LIMIT: int = 90
    # Seconds a result stays in Redis when nobody collects it: longer than the
    # API waits before it calls a task LOST (its TASK_EXPIRES plus
    # TASK_LOST_AFTER), so that an unread result is never taken for lost.
    RESULT_EXPIRES: int = 86400
    # Seconds Redis may take to accept a connection or answer a command.
    REDIS_TIMEOUT: float = 2.0
    # Send an event when a task is received, started, succeeded, failed,
    # retried or revoked (`celery worker -E`), for a Celery monitor to read.
    # Each event is one more message to the broker.
    WORKER_SEND_TASK_EVENTS: bool = False

    @property
    def consumed_queue(self) -> str:
        return (
            self.CELERY_LONG_TASK_QUEUE
            if self.WORKER_CONSUMES == "long"
            else self.CELERY_TASK_QUEUE
        )

    @property
    def node_name(self) -> str:
        """The worker's node name, before `@host`."""
        return WORKER_NAME + ("-long" if self.WORKER_CONSUMES == "long" else "")


@lru_cache
def get_settings() -> Settings:
    return Settings()
