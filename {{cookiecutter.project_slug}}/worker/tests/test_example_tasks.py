"""The example tasks (worker/example_tasks.py) on a real worker."""

import os
import signal
import time
from pathlib import Path

import pytest
from celery import Celery, chain, chord, group

from tests.tasks import RESULT_TIMEOUT, forget_all, revoke, sent, wait_for
from tests.test_healthcheck import (
    SOON_STALE,
    check,
    main_process,
    queue_of,
    within,
    worker_keeping_health,
)
from worker.config import WORKER_NAME
from worker.heartbeat import health_file


def test_integer_multiplication_runs_on_the_worker(celery_app: Celery) -> None:
    with sent(celery_app, f"{WORKER_NAME}.integer_multiplication", 21) as result:
        assert result.get(timeout=RESULT_TIMEOUT) == 42


def test_the_example_tasks_are_registered(celery_app: Celery, worker_node: str) -> None:
    inspect = celery_app.control.inspect(destination=[worker_node], timeout=5)
    registered = inspect.registered()[worker_node]
    for name in ("integer_multiplication", "integers_sum", "long_running"):
        assert f"{WORKER_NAME}.{name}" in registered


def test_integers_sum_and_its_refusal_of_other_types(celery_app: Celery) -> None:
    name = f"{WORKER_NAME}.integers_sum"
    with (
        sent(celery_app, name, [1, 2, 39]) as total,
        sent(celery_app, name, [1, "2"]) as refused,
    ):
        assert total.get(timeout=RESULT_TIMEOUT) == 42
        with pytest.raises(TypeError, match="expected a list of integers"):
            refused.get(timeout=RESULT_TIMEOUT)
        assert refused.state == "FAILURE"


def test_long_running_task_reports_progress(celery_app: Celery) -> None:
    seen: list[dict[str, int]] = []
    with sent(celery_app, f"{WORKER_NAME}.long_running", 1.0, 4) as result:
        deadline = time.monotonic() + RESULT_TIMEOUT
        while not result.ready() and time.monotonic() < deadline:
            if result.state == "PROGRESS" and result.info not in seen:
                seen.append(result.info)
            time.sleep(0.05)
        assert result.get(timeout=RESULT_TIMEOUT) == 4
        assert seen, "no PROGRESS state was seen"
        assert all(info["total"] == 4 and 1 <= info["done"] <= 4 for info in seen)


def test_canvas_workflows_run_on_the_worker(celery_app: Celery) -> None:
    double = celery_app.signature(f"{WORKER_NAME}.integer_multiplication")
    total = celery_app.signature(f"{WORKER_NAME}.integers_sum")
    workflows = {
        "chain": (chain(double.clone(args=(3,)), double.clone(), double.clone()), 24),
        "group": (group(double.clone(args=(3,)) for _ in range(3)), [6, 6, 6]),
        "chord": (chord((double.clone(args=(3,)) for _ in range(3)), total.clone()), 18),
    }
    for name, (workflow, expected) in workflows.items():
        result = workflow.apply_async()
        try:
            assert result.get(timeout=RESULT_TIMEOUT) == expected, name
        finally:
            forget_all(result)


def test_a_long_task_revoked_while_it_runs_stops_at_its_next_step(celery_app: Celery) -> None:
    with sent(celery_app, f"{WORKER_NAME}.long_running", 4, 40) as result:
        wait_for(result, {"PROGRESS"})
        revoke(celery_app, result.id)
        began = time.monotonic()
        assert wait_for(result, {"REVOKED", "SUCCESS"}) == "REVOKED"
        # One step is 0.1 s; the whole task would take 4 s.
        assert time.monotonic() - began < 1


def test_a_worker_draining_a_long_task_is_alive_and_not_ready(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    """A warm shutdown (SIGTERM, as a container is stopped) waits for the task
    that runs: the worker is not ready at once, and alive until it exits, so
    that a liveness check leaves a draining worker alone."""
    seconds = 2 * int(SOON_STALE)  # outlasts a heartbeat that would stop at SIGTERM
    with (
        worker_keeping_health("drain", health_dir, tmp_path) as node,
        sent(celery_app, f"{WORKER_NAME}.long_running", seconds, 4, queue=queue_of(node)) as result,
    ):
        wait_for(result, {"STARTED", "PROGRESS"})
        os.kill(main_process(celery_app, node), signal.SIGTERM)
        assert within(5, lambda: check(health_dir, "--ready") == 1)
        deadline = time.monotonic() + seconds + RESULT_TIMEOUT
        while not result.ready() and time.monotonic() < deadline:
            assert check(health_dir, SOON_STALE) == 0, "a draining worker looked dead"
            time.sleep(0.5)
        assert result.get(timeout=RESULT_TIMEOUT) == 4
        assert within(10, lambda: not health_file("alive").exists())
