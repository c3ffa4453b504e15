"""What the tests (the engine's and the service's) and the benchmarks share to
run the real thing: a database of their own, a free port, processes in the
background, a plain Celery client and what it reads of the result backend,
and a Celery worker process on a queue of its own, removed when it stops.
Nothing here imports the service; the service's migrations are in
testkit/migrations.py.

Not part of the service: the image and the package leave it out.
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
from typing import IO, Any

import asyncpg
from celery import Celery
from sqlalchemy import make_url

from taskengine.queues import TaskQueuesAMQP, dead_letter_queue, dead_letter_queue_arguments

# The worker service sits next to the API in the project; tests and benchmarks
# run it as the real process it is. The API itself never imports its code.
WORKER_ROOT = Path(__file__).resolve().parents[2] / "worker"


def database_beside(configured_url: str, purpose: str) -> str:
    """The URL of a new database on the configured server: `<name>_<purpose>_<random>`,
    so a run never touches the data of the service it tests."""
    configured = make_url(configured_url)
    name = f"{configured.database}_{purpose}_{uuid.uuid4().hex[:8]}"
    return configured.set(database=name).render_as_string(hide_password=False)


async def create_database(database_url: str) -> None:
    await _on_server(database_url, "CREATE DATABASE {}")


async def drop_database(database_url: str) -> None:
    """Drop the URL's database, closing its connections."""
    await _on_server(database_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


async def _on_server(database_url: str, statement: str) -> None:
    """Run a statement about the URL's database, connected to the server's `postgres`."""
    target = make_url(database_url)
    server = target.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await connection.execute(statement.format(f'"{target.database}"'))
    finally:
        await connection.close()


def celery_client(broker_url: str, backend_url: str, serializer: str, queue_type: str) -> Celery:
    """A plain, blocking Celery client: it pings workers, deletes queues, reads
    results, and is the baseline of the benchmarks."""
    # Its queues as the service declares them (RabbitMQ refuses other arguments).
    client = Celery(
        "testkit",
        broker=broker_url,
        backend=backend_url,
        set_as_current=False,
        amqp=TaskQueuesAMQP,
    )
    client.conf.update(
        task_serializer=serializer,
        result_serializer=serializer,
        # Results too (Celery's result_accept_content falls back to it); JSON
        # stays accepted for Celery's own control messages.
        accept_content=sorted({serializer, "json"}),
        task_default_queue_type=queue_type,
        # A dead broker fails a ping at once instead of after minutes of retries.
        broker_connection_timeout=2,
        broker_connection_max_retries=1,
    )
    return client


def stored_meta(client: Celery, task_id: str) -> dict[str, Any] | None:
    """What a worker stored for the task (status, result...), read afresh from
    the result backend; None while nothing is stored, or once it was deleted.
    (AsyncResult would cache a final state, and says PENDING for nothing.)"""
    backend = client.backend
    payload = backend.get(backend.get_key_for_task(task_id))
    if not payload:
        return None
    meta: dict[str, Any] = backend.decode_result(payload)
    return meta


def subscriptions(client: Celery, task_ids: list[str]) -> int:
    """Redis' own count of subscriptions, from every client, to the channels
    on which workers publish these tasks' states."""
    backend = client.backend
    channels = [backend.get_key_for_task(task_id) for task_id in task_ids]
    return sum(count for _, count in backend.client.pubsub_numsub(*channels))


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word: clients wait."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def free_port() -> int:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_environment(**settings: str) -> dict[str, str]:
    """What a worker process gets on top of this process's environment."""
    environment = dict(settings)
    # Celery refuses a pickle-accepting worker as root (and says nothing with
    # JSON). Test machines and CI containers often run as root, and this worker
    # consumes only its own queue; a deployed worker runs as an unprivileged user.
    if os.geteuid() == 0:
        environment["C_FORCE_ROOT"] = "1"
    return environment


@contextmanager
def background_process(
    command: list[str], cwd: Path, environment: dict[str, str], output: IO[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the duration of the block, stopped (then killed) after it."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **environment},
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    environment = worker_environment(CELERY_TASK_QUEUE=queue, **settings)
    try:
        with background_process(command, WORKER_ROOT, environment, output) as process:
            deadline = time.monotonic() + startup_timeout
            while not client.control.ping(destination=[node], timeout=0.5):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker {node} did not start")
            yield node
    finally:
        delete_queue(client, queue)


@contextmanager
def dead_letters_reader(client: Celery, queue: str, **settings: str) -> Iterator[str]:
    """A worker that reads the dead letters of `queue` (worker/dead_letters.py)
    and runs none of its tasks: it consumes a queue of its own instead, so
    that what is sent to `queue` waits there, and expires. Yields its node."""
    busy = f"{queue}.busy"
    node = f"dead-letters-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    options = ["--concurrency=1", "--without-gossip", "--without-mingle", f"--queues={busy}"]
    try:
        # Each keyword given, so that mypy lets the settings through.
        with celery_worker(
            client, queue, node, options, output=None, startup_timeout=30, **settings
        ):
            yield node
    finally:
        delete_queue(client, busy)


def declare_queue(client: Celery, queue: str) -> None:
    """Declare a queue as the service does, with its dead-letter queue, and
    without the publish's deadline: on a busy machine a quorum queue's
    creation can take longer than that."""
    declared = client.amqp.queues[queue]
    arguments = dead_letter_queue_arguments(client.conf.task_default_queue_type)
    with client.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_declare(
            dead_letter_queue(queue), durable=True, auto_delete=False, arguments=arguments
        )
        declared.bind(channel).declare()


def delete_queue(client: Celery, queue: str) -> None:
    """Delete a queue, its dead-letter queue, and the exchange of the same name
    Celery declared with it."""
    with client.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue)
        connection.default_channel.queue_delete(dead_letter_queue(queue))
        connection.default_channel.exchange_delete(queue)
