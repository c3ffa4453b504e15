"""A task that kills the process running it, as running out of memory would.
Only the worker of the test that needs it imports it (`--include`)."""

import os
import signal

from worker.celery_app import celery_app
from worker.config import WORKER_NAME

KILL_OWN_PROCESS = f"{WORKER_NAME}.tests.kill_own_process"


@celery_app.task(name=KILL_OWN_PROCESS)
def kill_own_process(runs_key: str) -> None:
    """Count the run in Redis under `runs_key`, then die."""
    celery_app.backend.client.incr(runs_key)
    os.kill(os.getpid(), signal.SIGKILL)
