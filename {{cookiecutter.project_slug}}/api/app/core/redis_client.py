"""The API's Redis client: one bounded pool per process, with timeouts on
every connection and every command, and one retry for a stale connection."""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core.config import Settings


def create_redis(settings: Settings) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.CELERY_RESULT_BACKEND_URL,
        max_connections=settings.REDIS_POOL_SIZE,
        # Seconds to wait for a free connection, as for a new one.
        timeout=settings.REDIS_CONNECT_TIMEOUT,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        # A Redis that accepts connections and never answers gives 503 after
        # this, not a request that hangs. The result listener's blocking read
        # is not bounded by it: it waits for messages as long as it lives.
        socket_timeout=settings.REDIS_COMMAND_TIMEOUT,
        # After Redis restarts, every pooled connection is dead, and the first
        # command on each fails at once: that command is sent again, once, on a
        # new connection. A timeout is not retried: a silent Redis would only
        # hold the request twice as long.
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        # Find a half-dead idle connection with a PING before using it.
        health_check_interval=30,
    )
    return Redis.from_pool(pool)
