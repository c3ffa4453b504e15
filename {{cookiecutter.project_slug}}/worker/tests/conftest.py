"""A real worker process on the real RabbitMQ and Redis.

Each run consumes its own queue, deleted at the end, so a worker that already
serves the real queue on this machine neither steals nor receives test tasks.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from worker.config import ACCEPT_CONTENT, WORKER_NAME, get_settings
from worker.queues import dead_letter_queue

TEST_QUEUE = f"test.{WORKER_NAME}.{uuid.uuid4().hex[:12]}"
os.environ["CELERY_TASK_QUEUE"] = TEST_QUEUE
get_settings.cache_clear()

from celery import Celery  # noqa: E402  (the queue must be set first)

from worker.celery_app import celery_app as app  # noqa: E402

WORKER_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30
# Seconds a worker of these tests may take to stop once told to: compose.yaml
# gives a running task up to TASK_TIME_LIMIT, but no test leaves one running.
STOP_TIMEOUT = 30


def unreachable(name: str, url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        return f"{name} is not answering at {host}:{port} ({error.strerror or error})"
    return None


@pytest.fixture(scope="session", autouse=True)
def services() -> None:
    settings = get_settings()
    missing = [
        problem
        for problem in (
            unreachable("RabbitMQ (CELERY_BROKER_URL)", settings.CELERY_BROKER_URL, 5672),
            unreachable(
                "Redis (CELERY_RESULT_BACKEND_URL)", settings.CELERY_RESULT_BACKEND_URL, 6379
            ),
        )
        if problem
    ]
    if missing:
        pytest.exit("Cannot test the worker: " + "; ".join(missing), returncode=3)


@contextmanager
def worker_process(
    queue: str, node: str, log: Path, *options: str, **settings: str
) -> Iterator[str]:
    """`celery worker` as a process consuming `queue` as `node`, with one
    process unless the options say otherwise, and these settings on top of the
    environment; yields the node once it answers.
    Then stops it as a container is stopped, with SIGTERM (a warm shutdown: a
    running task may finish), and deletes the queue. These tests are the
    worker's own: one that has not stopped within STOP_TIMEOUT fails them (the
    wait raises), and is killed."""
    environment = {**worker_environment(), "CELERY_TASK_QUEUE": queue, **settings}
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"),
                *(f"--hostname={node}", "--loglevel=INFO"),
                # Gossip and mingle only slow the start of a worker that works alone.
                *("--without-gossip", "--without-mingle"),
                *(options or ["--concurrency=1"]),
            ],
            cwd=WORKER_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(process, node, log)
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        finally:
            process.kill()  # a no-op once it has stopped
            process.wait()
            with app.connection_for_write() as connection:
                # Celery declared an exchange of the same name along with the
                # queue, and the worker its dead-letter queue.
                connection.default_channel.queue_delete(queue)
                connection.default_channel.queue_delete(dead_letter_queue(queue))
                connection.default_channel.exchange_delete(queue)


@pytest.fixture(scope="session")
def worker_node(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`celery worker` running as a process on the test queue; yields its node name."""
    node = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with worker_process(TEST_QUEUE, node, log):
        yield node


def worker_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # Celery refuses to run a pickle-accepting worker as root. Test machines and
    # CI containers often run as root, and this worker consumes only its own
    # test queue; a deployed worker runs as an unprivileged user instead.
    if "pickle" in ACCEPT_CONTENT and os.geteuid() == 0:
        environment["C_FORCE_ROOT"] = "1"
    return environment


def wait_until_answering(process: subprocess.Popen[bytes], node: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{log.read_text()}")
        if app.control.ping(destination=[node], timeout=0.5):
            return
    pytest.fail(f"the worker did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


@pytest.fixture
def health_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of a worker under test (its TMPDIR), where it
    keeps its health files, and of this process."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    return directory


@pytest.fixture(scope="session")
def celery_app(worker_node: str) -> Celery:
    """The worker's app, as a producer talks to it, with the worker running."""
    return app
