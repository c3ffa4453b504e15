"""WORKER_SEND_TASK_EVENTS: a worker told to send events at each step of a
task, as a Celery monitor reads them from the broker; the default sends none."""

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery

from tests.conftest import worker_process
from tests.tasks import ECHO, RESULT_TIMEOUT, sent

# The events a task sends on its way: received, started, and how it ended.
TASK_STEPS = {"task-received", "task-started", "task-succeeded"}


@contextmanager
def task_events(app: Celery) -> Iterator[list[dict[str, Any]]]:
    """Every event the broker carries while the block runs, as a monitor reads them."""
    events: list[dict[str, Any]] = []
    listening = threading.Event()
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": events.append})
        receiver.on_consume_ready = lambda *args, **kwargs: listening.set()
        capturing = threading.Thread(target=receiver.capture, kwargs={"wakeup": False})
        capturing.start()
        try:
            assert listening.wait(10), "the event receiver did not start"
            yield events
        finally:
            receiver.should_stop = True
            capturing.join(timeout=10)


def steps_of(events: list[dict[str, Any]], task_id: str) -> set[str]:
    return {event["type"] for event in events if event.get("uuid") == task_id}


def test_only_a_worker_told_to_sends_task_events(celery_app: Celery, tmp_path: Path) -> None:
    # A second worker, on a queue of its own, told to send events.
    queue = f"test.events.{uuid.uuid4().hex[:12]}"
    node = f"events-{uuid.uuid4().hex[:8]}@localhost"
    with (
        worker_process(queue, node, tmp_path / "worker.log", WORKER_SEND_TASK_EVENTS="true"),
        task_events(celery_app) as events,
        sent(celery_app, ECHO, "told", queue=queue) as told,
        sent(celery_app, ECHO, "default") as default,
    ):
        assert told.get(timeout=RESULT_TIMEOUT) == "told"
        assert default.get(timeout=RESULT_TIMEOUT) == "default"
        deadline = time.monotonic() + RESULT_TIMEOUT
        while steps_of(events, told.id) != TASK_STEPS and time.monotonic() < deadline:
            time.sleep(0.05)
        # Time for the default worker's events too, were it to send any.
        time.sleep(0.5)
    assert steps_of(events, told.id) == TASK_STEPS
    assert {e["hostname"] for e in events if e.get("uuid") == told.id} == {node}
    assert steps_of(events, default.id) == set()
