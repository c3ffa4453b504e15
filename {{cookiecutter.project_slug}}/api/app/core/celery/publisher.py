"""Publishing without blocking the event loop.

Celery's client is synchronous, so messages are published from a small, fixed
pool of threads: a thread is busy for the publish only (about a millisecond,
confirm included), never while a task runs. A request that cannot publish
within the deadline (no free thread, no broker connection, no confirm) gets
BrokerUnavailableError at once, which the routes answer with 503.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from celery import Celery
from celery.canvas import Signature
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


class BrokerUnavailableError(Exception):
    """The message could not be handed to the broker within the deadline."""


class Publisher:
    def __init__(self, client: Celery, pool_size: int, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self.executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="publish")
        # As many publishes in flight as threads: the rest wait here, where
        # the deadline applies, not in the executor's unbounded queue.
        self.slots = asyncio.Semaphore(pool_size)

    async def run(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking broker call in the pool, within the deadline."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.deadline), self.slots:
                return await loop.run_in_executor(self.executor, partial(function, *args, **kwargs))
        except (TimeoutError, OperationalError, OSError) as error:
            logger.warning("Broker unavailable: %r", error)
            raise BrokerUnavailableError from error

    async def publish(self, signature: Signature) -> None:
        # The broker must confirm within the deadline too.
        await self.run(signature.apply_async, confirm_timeout=self.deadline)

    async def revoke(self, task_ids: list[str]) -> None:
        """Ask every worker to drop these tasks, and to stop them if they run."""
        await self.run(self.client.control.revoke, task_ids, terminate=True)

    def close(self) -> None:
        # Threads blocked on a dead broker must not hold the process at exit.
        self.executor.shutdown(wait=False, cancel_futures=True)
