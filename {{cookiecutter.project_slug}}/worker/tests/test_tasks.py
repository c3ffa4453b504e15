import json
import pickle
import uuid

from celery import Celery

from tests.tasks import ECHO, RESULT_TIMEOUT, revoke, sent, wait_for
from worker.config import ACCEPT_CONTENT, TASK_SERIALIZER, WORKER_NAME


def test_echo_runs_on_the_worker(celery_app: Celery) -> None:
    with sent(celery_app, ECHO, "hello") as result:
        assert result.get(timeout=RESULT_TIMEOUT) == "hello"
        assert result.state == "SUCCESS"


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
    # The worker takes messages in order, one at a time: once the second task
    # is done, the first one has been seen, and refused.
    with (
        sent(celery_app, ECHO, "smuggled", serializer=REFUSED_FORMAT) as smuggled,
        sent(celery_app, ECHO, "follower") as follower,
    ):
        assert follower.get(timeout=RESULT_TIMEOUT) == "follower"
        assert smuggled.state == "PENDING"


def test_results_are_stored_in_the_chosen_format(celery_app: Celery) -> None:
    with sent(celery_app, ECHO, "stored") as result:
        assert result.get(timeout=RESULT_TIMEOUT) == "stored"
        backend = celery_app.backend
        raw = backend.client.get(backend.get_key_for_task(result.id))
        # Read the stored bytes without Celery, as any other consumer would.
        stored = pickle.loads(raw) if TASK_SERIALIZER == "pickle" else json.loads(raw)
        assert stored["status"] == "SUCCESS"
        assert stored["result"] == "stored"


def test_a_task_revoked_before_it_starts_never_runs(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    revoke(celery_app, task_id)
    with sent(celery_app, ECHO, "never", task_id=task_id) as result:
        assert wait_for(result, {"REVOKED", "SUCCESS"}) == "REVOKED"
