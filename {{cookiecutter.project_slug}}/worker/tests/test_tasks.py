import json
import pickle
import time
import uuid
from typing import Any

import pytest
from celery import Celery, chain, chord, group

from worker.config import ACCEPT_CONTENT, TASK_SERIALIZER, WORKER_NAME
from worker.revocations import REVOKED_KEY_PREFIX

RESULT_TIMEOUT = 10


def test_integer_multiplication_runs_on_the_worker(celery_app: Celery) -> None:
    result = celery_app.send_task(f"{WORKER_NAME}.integer_multiplication", args=[21])
    try:
        assert result.get(timeout=RESULT_TIMEOUT) == 42
        assert result.state == "SUCCESS"
    finally:
        result.forget()


def test_worker_registers_its_tasks_under_the_worker_name(
    celery_app: Celery, worker_node: str
) -> None:
    inspect = celery_app.control.inspect(destination=[worker_node], timeout=5)
    registered = inspect.registered()[worker_node]
    assert registered == [
        f"{WORKER_NAME}.{name}"
        for name in ("integer_multiplication", "integers_sum", "long_running")
    ]


# A format the worker must refuse: pickle, unless pickle was chosen.
REFUSED_FORMAT = "yaml" if "pickle" in ACCEPT_CONTENT else "pickle"


def test_message_in_a_refused_format_is_never_run(celery_app: Celery) -> None:
    name = f"{WORKER_NAME}.integer_multiplication"
    smuggled = celery_app.send_task(name, args=[1], serializer=REFUSED_FORMAT)
    # The worker takes messages in order, one at a time: once the second task
    # is done, the first one has been seen, and refused.
    follower = celery_app.send_task(name, args=[2])
    try:
        assert follower.get(timeout=RESULT_TIMEOUT) == 4
        assert smuggled.state == "PENDING"
    finally:
        follower.forget()
        smuggled.forget()


def test_results_are_stored_in_the_chosen_format(celery_app: Celery) -> None:
    result = celery_app.send_task(f"{WORKER_NAME}.integer_multiplication", args=[5])
    try:
        assert result.get(timeout=RESULT_TIMEOUT) == 10
        backend = celery_app.backend
        raw = backend.client.get(backend.get_key_for_task(result.id))
        # Read the stored bytes without Celery, as any other consumer would.
        stored = pickle.loads(raw) if TASK_SERIALIZER == "pickle" else json.loads(raw)
        assert stored["status"] == "SUCCESS"
        assert stored["result"] == 10
    finally:
        result.forget()


def test_integers_sum_and_its_refusal_of_other_types(celery_app: Celery) -> None:
    name = f"{WORKER_NAME}.integers_sum"
    total = celery_app.send_task(name, args=[[1, 2, 39]])
    refused = celery_app.send_task(name, args=[[1, "2"]])
    try:
        assert total.get(timeout=RESULT_TIMEOUT) == 42
        with pytest.raises(TypeError, match="expected a list of integers"):
            refused.get(timeout=RESULT_TIMEOUT)
        assert refused.state == "FAILURE"
    finally:
        total.forget()
        refused.forget()


def test_long_running_task_reports_progress(celery_app: Celery) -> None:
    result = celery_app.send_task(f"{WORKER_NAME}.long_running", args=[1.0, 4])
    seen: list[dict[str, int]] = []
    try:
        deadline = time.monotonic() + RESULT_TIMEOUT
        while not result.ready() and time.monotonic() < deadline:
            if result.state == "PROGRESS" and result.info not in seen:
                seen.append(result.info)
            time.sleep(0.05)
        assert result.get(timeout=RESULT_TIMEOUT) == 4
        assert seen, "no PROGRESS state was seen"
        assert all(info["total"] == 4 and 1 <= info["done"] <= 4 for info in seen)
    finally:
        result.forget()


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


def forget_all(result: Any) -> None:
    """Forget a result, its group members and its parents (chain, chord)."""
    while result is not None:
        for member in getattr(result, "results", None) or [result]:
            member.forget()
        result = result.parent


def wait_for(result: Any, states: set[str], seconds: float = RESULT_TIMEOUT) -> str:
    deadline = time.monotonic() + seconds
    while result.state not in states:
        assert time.monotonic() < deadline, f"{result.id} stayed {result.state}"
        time.sleep(0.02)
    return str(result.state)


def revoke(celery_app: Celery, task_id: str) -> None:
    """As the API revokes a task (app/core/producer/revoker.py)."""
    celery_app.backend.client.set(REVOKED_KEY_PREFIX + task_id, 1, ex=60)


def test_a_task_revoked_before_it_starts_never_runs(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    revoke(celery_app, task_id)
    result = celery_app.send_task(
        f"{WORKER_NAME}.integer_multiplication", args=[1], task_id=task_id
    )
    try:
        assert wait_for(result, {"REVOKED", "SUCCESS"}) == "REVOKED"
    finally:
        result.forget()


def test_a_long_task_revoked_while_it_runs_stops_at_its_next_step(celery_app: Celery) -> None:
    result = celery_app.send_task(f"{WORKER_NAME}.long_running", args=[4, 40])
    try:
        wait_for(result, {"PROGRESS"})
        revoke(celery_app, result.id)
        began = time.monotonic()
        assert wait_for(result, {"REVOKED", "SUCCESS"}) == "REVOKED"
        # One step is 0.1 s; the whole task would take 4 s.
        assert time.monotonic() - began < 1
    finally:
        result.forget()
