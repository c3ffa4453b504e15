import json
import pickle
import time
import uuid
from typing import Any

from celery import Celery

from worker.config import ACCEPT_CONTENT, TASK_SERIALIZER, WORKER_NAME
from worker.revocations import REVOKED_KEY_PREFIX

RESULT_TIMEOUT = 10
ECHO = f"{WORKER_NAME}.echo"


def test_echo_runs_on_the_worker(celery_app: Celery) -> None:
    result = celery_app.send_task(ECHO, args=["hello"])
    try:
        assert result.get(timeout=RESULT_TIMEOUT) == "hello"
        assert result.state == "SUCCESS"
    finally:
        result.forget()


def test_worker_registers_its_tasks_under_the_worker_name(
    celery_app: Celery, worker_node: str
) -> None:
    inspect = celery_app.control.inspect(destination=[worker_node], timeout=5)
    registered = inspect.registered()[worker_node]
    assert ECHO in registered
    assert all(name.startswith(f"{WORKER_NAME}.") for name in registered)


# A format the worker must refuse: pickle, unless pickle was chosen.
REFUSED_FORMAT = "yaml" if "pickle" in ACCEPT_CONTENT else "pickle"


def test_message_in_a_refused_format_is_never_run(celery_app: Celery) -> None:
    smuggled = celery_app.send_task(ECHO, args=["smuggled"], serializer=REFUSED_FORMAT)
    # The worker takes messages in order, one at a time: once the second task
    # is done, the first one has been seen, and refused.
    follower = celery_app.send_task(ECHO, args=["follower"])
    try:
        assert follower.get(timeout=RESULT_TIMEOUT) == "follower"
        assert smuggled.state == "PENDING"
    finally:
        follower.forget()
        smuggled.forget()


def test_results_are_stored_in_the_chosen_format(celery_app: Celery) -> None:
    result = celery_app.send_task(ECHO, args=["stored"])
    try:
        assert result.get(timeout=RESULT_TIMEOUT) == "stored"
        backend = celery_app.backend
        raw = backend.client.get(backend.get_key_for_task(result.id))
        # Read the stored bytes without Celery, as any other consumer would.
        stored = pickle.loads(raw) if TASK_SERIALIZER == "pickle" else json.loads(raw)
        assert stored["status"] == "SUCCESS"
        assert stored["result"] == "stored"
    finally:
        result.forget()


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
    """As the API cancels a task (api/taskengine/tracking.py)."""
    celery_app.backend.client.set(REVOKED_KEY_PREFIX + task_id, 1, ex=60)


def test_a_task_revoked_before_it_starts_never_runs(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    revoke(celery_app, task_id)
    result = celery_app.send_task(ECHO, args=["never"], task_id=task_id)
    try:
        assert wait_for(result, {"REVOKED", "SUCCESS"}) == "REVOKED"
    finally:
        result.forget()
