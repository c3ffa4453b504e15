import json
import pickle
import socket
import time
import uuid

import pytest
from celery import Celery
from celery.exceptions import Ignore, Reject

from tests.tasks import ECHO, RESULT_TIMEOUT, revoke, sent, wait_for
from worker.config import TASK_SERIALIZER, WORKER_NAME, get_settings
from worker.revocations import ENDED_KEPT, ENDED_KEY_PREFIX, Revocable, started_unless_revoked
from worker.tasks import echo


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


def test_a_task_publishes_started_then_its_result(celery_app: Celery) -> None:
    # What the API's listener hears of one task, subscribed before it is sent.
    task_id = str(uuid.uuid4())
    listener = celery_app.backend.client.pubsub()
    listener.subscribe(celery_app.backend.get_key_for_task(task_id))
    try:
        with sent(celery_app, ECHO, "heard", task_id=task_id) as result:
            assert result.get(timeout=RESULT_TIMEOUT) == "heard"
            statuses: list[str] = []
            while len(statuses) < 2:
                message = listener.get_message(timeout=RESULT_TIMEOUT)
                assert message is not None, f"heard only {statuses}"
                if message["type"] == "message":
                    statuses.append(celery_app.backend.decode_result(message["data"])["status"])
            assert statuses == ["STARTED", "SUCCESS"]
    finally:
        listener.close()


def started_meta(celery_app: Celery, task_id: str, **delivery_info: bool) -> tuple[bool, str]:
    """What the worker's start of a task (in this process) answers and leaves stored."""
    task = echo
    task.push_request(id=task_id, delivery_info=delivery_info, hostname="test@here")
    try:
        revoked = started_unless_revoked(task)
    finally:
        task.pop_request()
    return revoked, celery_app.backend.get_task_meta(task_id)["status"]


def test_starting_stores_started_and_finds_the_revocation_mark(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    try:
        assert started_meta(celery_app, task_id) == (False, "STARTED")
        revoke(celery_app, task_id)
        assert started_meta(celery_app, task_id) == (True, "STARTED")
    finally:
        celery_app.backend.forget(task_id)


def test_a_task_with_a_countdown_holds_no_process_meanwhile(celery_app: Celery) -> None:
    """As a retry's backoff does: the one process of this worker serves a task
    sent after it. With quorum queues RabbitMQ keeps the delayed task (native
    delayed delivery, through topic exchanges: worker/queues.py); a worker
    holding it would hold its one prefetched message, as quorum queues do not
    let Celery raise the prefetch for it."""
    sent_at = time.monotonic()
    with (
        sent(celery_app, ECHO, "later", countdown=3) as later,
        sent(celery_app, ECHO, "now") as now,
    ):
        assert now.get(timeout=RESULT_TIMEOUT) == "now"
        assert time.monotonic() - sent_at < 2
        assert later.get(timeout=RESULT_TIMEOUT) == "later"
        assert time.monotonic() - sent_at >= 3


@pytest.mark.parametrize("redelivered", [True, False])
def test_a_task_delivered_again_after_its_end_does_not_run_again(
    celery_app: Celery, redelivered: bool
) -> None:
    """As when a broker node is lost between a task's end and its
    acknowledgement: the next delivery finds the end, puts it back, and does
    not run. RabbitMQ does not always flag such a delivery as redelivered (a
    quorum queue whose leader was lost did not), so every start looks."""
    task_id = str(uuid.uuid4())
    celery_app.backend.store_result(task_id, "done before", "SUCCESS")
    echo.push_request(
        id=task_id,
        delivery_info={"redelivered": redelivered},
        called_directly=False,
        hostname="test@here",
    )
    try:
        with pytest.raises(Ignore):
            echo("again")
        meta = celery_app.backend.get_task_meta(task_id)
        assert (meta["status"], meta["result"]) == ("SUCCESS", "done before")
    finally:
        echo.pop_request()
        celery_app.backend.forget(task_id)


def test_a_task_delivered_again_after_its_end_was_moved_does_not_run_again(
    celery_app: Celery,
) -> None:
    """The API moved the end to the task's record and forgot it in Redis: the
    worker's own mark of the end tells, and nothing of the task is left."""
    task_id = str(uuid.uuid4())
    client = celery_app.backend.client
    client.set(ENDED_KEY_PREFIX + task_id, 1, ex=60)
    echo.push_request(id=task_id, delivery_info={}, called_directly=False, hostname="test@here")
    try:
        with pytest.raises(Ignore):
            echo("again")
        assert client.exists(celery_app.backend.get_key_for_task(task_id)) == 0
    finally:
        echo.pop_request()
        client.delete(ENDED_KEY_PREFIX + task_id)


def test_a_task_that_ends_is_marked_ended_for_a_while(celery_app: Celery) -> None:
    with sent(celery_app, ECHO, "marked") as result:
        assert result.get(timeout=RESULT_TIMEOUT) == "marked"
        key = ENDED_KEY_PREFIX + result.id
        client = celery_app.backend.client
        # The mark follows the stored end, which the result was read from.
        deadline = time.monotonic() + RESULT_TIMEOUT
        while not client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            assert 0 < client.ttl(key) <= ENDED_KEPT
        finally:
            celery_app.backend.client.delete(key)


def test_a_redelivered_task_finds_its_revocation_mark(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    revoke(celery_app, task_id)
    try:
        assert started_meta(celery_app, task_id, redelivered=True) == (True, "STARTED")
    finally:
        celery_app.backend.forget(task_id)


def test_started_expires_with_the_results(celery_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    try:
        started_meta(celery_app, task_id)
        backend = celery_app.backend
        seconds = backend.client.ttl(backend.get_key_for_task(task_id))
        assert 0 < seconds <= get_settings().RESULT_EXPIRES
    finally:
        celery_app.backend.forget(task_id)


def returned(text: str) -> str:
    return text


@pytest.mark.parametrize("redelivered", [False, True])
def test_a_task_that_cannot_store_started_goes_back_to_the_queue(redelivered: bool) -> None:
    """Run unseen, a cancel would call it REVOKED while it runs: it waits for Redis."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    away = Celery("away", backend=f"redis://127.0.0.1:{port}/0", set_as_current=False)
    away.backend.retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0}
    task = away.task(name="away.echo", base=Revocable, shared=False)(returned)
    task.push_request(id=str(uuid.uuid4()), delivery_info={"redelivered": redelivered})
    try:
        with pytest.raises(Reject) as rejected:
            started_unless_revoked(task)
    finally:
        task.pop_request()
    assert rejected.value.requeue
