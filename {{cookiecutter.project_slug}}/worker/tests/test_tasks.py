import pytest
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


@pytest.mark.skipif("pickle" in ACCEPT_CONTENT, reason="pickle is the chosen serializer")
def test_pickle_message_is_refused_unrun(celery_app: Celery) -> None:
    name = f"{WORKER_NAME}.integer_multiplication"
    smuggled = celery_app.send_task(name, args=[1], serializer="pickle")
    # The solo worker takes messages in order: once the second task is done,
    # the first one has been seen, and refused.
    follower = celery_app.send_task(name, args=[2])
    try:
        assert follower.get(timeout=RESULT_TIMEOUT) == 4
        assert smuggled.state == "PENDING"
    finally:
        follower.forget()
        smuggled.forget()


def test_messages_use_the_chosen_serializer(celery_app: Celery) -> None:
    assert celery_app.conf.task_serializer == TASK_SERIALIZER
    assert celery_app.conf.result_serializer == TASK_SERIALIZER
    assert set(celery_app.conf.accept_content) == {TASK_SERIALIZER, "json"}
