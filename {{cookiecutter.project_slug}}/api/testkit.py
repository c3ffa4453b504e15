"""What the API's tests and benchmarks share to run the real thing: a free port,
and a Celery worker process on a queue of its own, removed when it stops.

Not part of the service: the image and the package leave it out.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from celery import Celery

from app.core.celery.client import ACCEPT_CONTENT

# The worker service sits next to the API in the project; tests and benchmarks
# run it as the real process it is. The API itself never imports its code.
WORKER_ROOT = Path(__file__).resolve().parents[1] / "worker"


def free_port() -> int:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_environment(**settings: str) -> dict[str, str]:
    environment = {**os.environ, **settings}
    # Celery refuses a pickle-accepting worker as root. Test machines and CI
    # containers often run as root, and this worker consumes only its own queue;
    # a deployed worker runs as an unprivileged user instead.
    if "pickle" in ACCEPT_CONTENT and os.geteuid() == 0:
        environment["C_FORCE_ROOT"] = "1"
    return environment


@contextmanager
def celery_worker(
    client: Celery,
    queue: str,
    node: str,
    options: list[str],
    *,
    output: IO[str] | None = None,
    startup_timeout: float = 30,
    **settings: str,
) -> Iterator[str]:
    """`celery worker` consuming `queue` as `node`; yields the node once it answers.

    Stops it when the block ends (a warm shutdown, then a kill), and deletes the
    queue and the exchange of the same name that Celery declared with it.
    """
    command = [
        *(sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"),
        f"--hostname={node}",
        *options,
    ]
    process = subprocess.Popen(
        command,
        cwd=WORKER_ROOT,
        env=worker_environment(CELERY_TASK_QUEUE=queue, **settings),
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not client.control.ping(destination=[node], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker {node} did not start")
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with client.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
            connection.default_channel.exchange_delete(queue)
