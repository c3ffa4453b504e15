"""Revoking tasks: every worker drops them, and stops those that run."""

import asyncio

from celery import Celery
from kombu.exceptions import OperationalError

from app.core.producer.errors import BrokerUnavailableError


class Revoker:
    def __init__(self, client: Celery, deadline: float) -> None:
        self._client = client
        self._deadline = deadline

    async def revoke(self, task_ids: list[str]) -> None:
        """Ask every worker to drop these tasks, and to stop them if they run.

        Celery's broadcast is synchronous; revoking is rare, so it borrows a
        thread of the default pool for the moment it takes.
        """
        try:
            async with asyncio.timeout(self._deadline):
                await asyncio.to_thread(self._client.control.revoke, task_ids, terminate=True)
        except (TimeoutError, OperationalError, OSError) as error:
            raise BrokerUnavailableError from error
