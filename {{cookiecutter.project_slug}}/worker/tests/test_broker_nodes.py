"""A worker given a cluster's nodes (CELERY_BROKER_URL, separated by `;`)
serves through one that answers, and one that is down does not hold it back."""

import socket
import time
import uuid
from pathlib import Path

from celery import Celery

from tests.conftest import TEST_QUEUE, worker_process
from tests.tasks import ECHO, RESULT_TIMEOUT, sent
from worker.config import get_settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seconds_to_answer(queue: str, log: Path, **settings: str) -> float:
    node = f"nodes-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    started = time.monotonic()
    with worker_process(queue, node, log, **settings):
        return time.monotonic() - started


def test_a_node_that_is_down_does_not_hold_the_worker_back(
    celery_app: Celery, tmp_path: Path
) -> None:
    """At each connection Celery's own delayed-delivery step went through every
    node, and retried one that was down for about ten seconds before the worker
    consumed (worker/consumer.py)."""
    broker = get_settings().CELERY_BROKER_URL
    dead = broker.replace(":5672", f":{closed_port()}", 1)
    assert dead != broker
    queue = f"{TEST_QUEUE}-nodes"
    alone = seconds_to_answer(queue, tmp_path / "alone.log")
    with_a_dead_node = seconds_to_answer(
        queue, tmp_path / "dead.log", CELERY_BROKER_URL=f"{dead};{broker}"
    )
    print(f"\nworker answers in {alone:.1f} s, {with_a_dead_node:.1f} s with a dead node first")
    assert with_a_dead_node < alone + 3


def test_the_worker_serves_through_the_node_that_answers(
    celery_app: Celery, tmp_path: Path
) -> None:
    broker = get_settings().CELERY_BROKER_URL
    dead = broker.replace(":5672", f":{closed_port()}", 1)
    queue = f"{TEST_QUEUE}-served"
    node = f"served-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    cluster = f"{dead};{broker}"
    with (
        worker_process(queue, node, tmp_path / "worker.log", CELERY_BROKER_URL=cluster),
        sent(celery_app, ECHO, "through a live node", queue=queue) as result,
    ):
        assert result.get(timeout=RESULT_TIMEOUT) == "through a live node"
