"""Tasks that no worker will run end at once, with the reason: what RabbitMQ
dead-lettered is read by the worker (worker/dead_letters.py), instead of
staying PENDING until the API calls it LOST."""

import socket
import statistics
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from celery import Celery
from kombu import Queue
from kombu.message import Message
from kombu.serialization import dumps

from tests.conftest import TEST_QUEUE, worker_process
from tests.process_killer import KILL_OWN_PROCESS
from tests.tasks import ECHO, RESULT_TIMEOUT, forget_all, sent, wait_for
from worker.config import ACCEPT_CONTENT, QUEUE_TYPE, TASK_SERIALIZER
from worker.dead_letters import DELIVERY_LIMIT_REACHED, DeadLetters
from worker.queues import DELIVERY_LIMIT

# A format the worker must refuse: pickle, unless pickle was chosen.
REFUSED_FORMAT = "yaml" if "pickle" in ACCEPT_CONTENT else "pickle"


def test_message_in_a_refused_format_is_never_run_and_ends_revoked(celery_app: Celery) -> None:
    """Refused for good, it is dead-lettered, and the worker stores why it
    ended instead of leaving it PENDING."""
    with (
        sent(celery_app, ECHO, "smuggled", serializer=REFUSED_FORMAT) as smuggled,
        sent(celery_app, ECHO, "follower") as follower,
    ):
        assert follower.get(timeout=RESULT_TIMEOUT) == "follower"
        assert wait_for(smuggled, {"REVOKED", "SUCCESS"}) == "REVOKED"
        assert str(smuggled.result) == "refused by a worker"


def test_a_message_whose_body_does_not_decode_is_rejected_and_ends_revoked(
    celery_app: Celery,
) -> None:
    """Celery itself would acknowledge it and forget it (worker/dead_letters.py)."""
    task_id = str(uuid.uuid4())
    message = celery_app.amqp.as_task_v2(task_id, ECHO, args=("broken",))
    content_type, content_encoding, _ = dumps("any", serializer=TASK_SERIALIZER)
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish(
            b"{not a body",
            exchange="",
            routing_key=TEST_QUEUE,
            headers=message.headers,
            content_type=content_type,
            content_encoding=content_encoding,
            delivery_mode=2,
        )
    broken = celery_app.AsyncResult(task_id)
    try:
        with sent(celery_app, ECHO, "follower") as follower:
            assert follower.get(timeout=RESULT_TIMEOUT) == "follower"
        assert wait_for(broken, {"REVOKED", "SUCCESS"}) == "REVOKED"
        assert str(broken.result) == "refused by a worker"
    finally:
        broken.forget()


def test_a_task_that_kills_its_process_ends_failed_while_the_others_run(
    celery_app: Celery, tmp_path: Path
) -> None:
    """A quorum queue hands it out again up to its delivery limit, then
    dead-letters it; with a classic queue, which has no limit, it is not handed
    out again (worker/celery_app.py). Either way the worker's other process
    serves the other tasks meanwhile."""
    queue = f"{TEST_QUEUE}-killer"
    node = f"killer-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    runs_key = f"test-runs-{uuid.uuid4().hex}"
    redis = celery_app.backend.client
    options = ("--concurrency=2", "--include=tests.process_killer")
    with worker_process(queue, node, tmp_path / "worker.log", *options):
        before = [round_trip(celery_app, queue) for _ in range(10)]
        killer = celery_app.send_task(KILL_OWN_PROCESS, args=(runs_key,), queue=queue)
        sent_at = time.monotonic()
        try:
            during = []
            deadline = time.monotonic() + 60
            while killer.state not in {"FAILURE", "SUCCESS"}:
                assert time.monotonic() < deadline, f"the killer stayed {killer.state}"
                during.append(round_trip(celery_app, queue))
            runs = int(redis.get(runs_key) or 0)
            print(
                f"\n{QUEUE_TYPE} queue: the killer ran {runs} times and ended in"
                f" {time.monotonic() - sent_at:.1f} s; {len(during)} echoes meanwhile:"
                f" echo median {statistics.median(before) * 1000:.1f} ms before,"
                f" {statistics.median(during) * 1000:.1f} ms during, max {max(during):.2f} s"
            )
            assert killer.state == "FAILURE"
            assert type(killer.result).__name__ == "WorkerLostError"
            if QUEUE_TYPE == "quorum":
                assert str(killer.result) == DELIVERY_LIMIT_REACHED
                assert runs == DELIVERY_LIMIT + 1
            else:
                assert runs == 1
            # Each replacement of a killed process pauses the pool a moment.
            assert statistics.median(during) < 0.25
        finally:
            forget_all(killer)
            redis.delete(runs_key)


def round_trip(celery_app: Celery, queue: str) -> float:
    started = time.perf_counter()
    with sent(celery_app, ECHO, "alive", queue=queue) as result:
        assert result.get(timeout=RESULT_TIMEOUT) == "alive"
    return time.perf_counter() - started


def test_a_dead_letter_whose_end_cannot_be_stored_goes_back_to_its_queue(
    celery_app: Celery,
) -> None:
    """Redis away: the step neither raises, which would stop the worker, nor
    drops the letter, which would leave its task PENDING."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    away = Celery("away", backend=f"redis://127.0.0.1:{closed_port}/0", set_as_current=False)
    away.conf.update(result_backend_max_retries=1, result_backend_max_sleep_between_retries_ms=10)
    step = DeadLetters(SimpleNamespace(app=away))
    task_id = str(uuid.uuid4())
    letters = Queue(f"{TEST_QUEUE}.letters-{uuid.uuid4().hex[:8]}", durable=False)
    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        letters(channel).declare()
        try:
            headers = {"id": task_id, "task": ECHO, "x-first-death-reason": "expired"}
            connection.Producer(channel).publish(
                b"{}", routing_key=letters.name, headers=headers, declare=[letters]
            )
            step.on_message(wait_for_message(letters(channel)))
            assert wait_for_message(letters(channel)).headers["id"] == task_id
        finally:
            letters(channel).delete()


def wait_for_message(queue: Queue) -> Message:
    deadline = time.monotonic() + RESULT_TIMEOUT
    while (message := queue.get(no_ack=False)) is None:
        assert time.monotonic() < deadline, f"nothing in {queue.name}"
        time.sleep(0.02)
    return message
