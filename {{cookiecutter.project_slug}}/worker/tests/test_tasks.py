import json
import pickle

from celery import Celery

from worker.config import ACCEPT_CONTENT, TASK_SERIALIZER, WORKER_NAME

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
    assert registered == [f"{WORKER_NAME}.integer_multiplication"]


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
