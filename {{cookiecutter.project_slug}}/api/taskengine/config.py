"""What an engine is told: where the services are, and its limits."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    # One RabbitMQ URL, or a cluster's nodes' separated by ";" as Celery takes them.
    broker_url: str
    redis_url: str
    # asyncpg's form: postgresql://user:password@host:port/database
    postgres_url: str
    # Where tasks go unless their signature names a queue.
    queue: str
    serializer: str = "json"
    # RabbitMQ's type of every task queue: "classic" or "quorum" (taskengine/queues.py).
    queue_type: str = "classic"
    # Seconds wait() waits, then cancels the task; and that submit()'s tasks
    # may wait in the queue before workers drop them.
    wait_timeout: float = 10.0
    expires: float = 3600.0
    # Seconds after its expiry when a task whose end no worker stored is LOST:
    # longer than a task may run, plus a worker's retries to store its result.
    lost_after: float = 300.0
    # Tasks an owner may have sent and not seen end, across every process.
    tasks_in_flight: int = 100
    # Seconds each service may take to answer, before ServiceUnavailableError.
    publish_timeout: float = 1.5
    redis_timeout: float = 2.0
    postgres_timeout: float = 5.0
    # Connections (channels for RabbitMQ) per process.
    publish_pool_size: int = 8
    redis_pool_size: int = 32
    postgres_pool_size: int = 4
    # Prefix of the engine's own Redis keys: services sharing a Redis count apart.
    key_prefix: str = "taskengine"


def broker_urls(broker_url: str) -> list[str]:
    """Each node's URL of a broker URL (a cluster's are separated by ";")."""
    urls = [url.strip() for url in broker_url.split(";") if url.strip()]
    if not urls:
        raise ValueError("the broker URL is empty")
    return urls
