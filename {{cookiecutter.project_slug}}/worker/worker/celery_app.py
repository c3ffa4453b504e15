"""The Celery application: `celery -A worker.celery_app worker`."""

from celery import Celery

from worker.config import ACCEPT_CONTENT, QUEUE_TYPE, TASK_SERIALIZER, WORKER_NAME, get_settings
from worker.dead_letters import DeadLetters
from worker.heartbeat import HealthFiles
from worker.queues import TaskQueuesAMQP, task_queue

settings = get_settings()

celery_app = Celery(
    WORKER_NAME,
    broker=settings.CELERY_BROKER_URL,
    backend=settings.CELERY_RESULT_BACKEND_URL,
    # Every task queue of its type, with its dead-letter queue (worker/queues.py).
    amqp=TaskQueuesAMQP,
    include=["worker.tasks"{% if cookiecutter.use_examples | enabled %}, "worker.example_tasks"{% endif %}],
)
celery_app.conf.update(
    # The queue this worker consumes (WORKER_CONSUMES). Producers name each
    # task's queue explicitly; this also catches the tasks that do not.
    task_default_queue=settings.consumed_queue,
    task_default_queue_type=QUEUE_TYPE,
    task_queues=[task_queue(settings.consumed_queue, QUEUE_TYPE)],
    task_serializer=TASK_SERIALIZER,
    result_serializer=TASK_SERIALIZER,
    # A message in any other format is refused before it is decoded.
    accept_content=ACCEPT_CONTENT,
    result_accept_content=ACCEPT_CONTENT,
    # Acknowledge after the task ran, so a worker that dies mid-task leaves the
    # message on the queue for another worker instead of losing it.
    task_acks_late=True,
    # The same when only the process running a task is lost, with quorum
    # queues: they hand the task out again up to their delivery limit
    # (worker/queues.py). A classic queue has no limit, so the task FAILED
    # there (WorkerLostError) instead of killing process after process.
    task_reject_on_worker_lost=QUEUE_TYPE == "quorum",
    # Reserve one message per process: a slow task does not hold back others
    # that an idle process could run.
    worker_prefetch_multiplier=1,
    task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT,
    task_time_limit=settings.TASK_TIME_LIMIT,
    # Producers can tell a queued task from a running one: every task stores
    # STARTED itself, with its revocation check (worker/revocations.py), in
    # one Redis round trip instead of the two of Celery's task_track_started.
    result_expires=settings.RESULT_EXPIRES,
    # Keep retrying the broker at start-up (in compose it may come up after
    # us), and for as long as it takes after a lost connection.
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # A broker node lost without a word (its machine gone: no reset, no close)
    # is found within seconds, not minutes: a heartbeat goes out every 5 s, and
    # py-amqp gives up on a connection whose data goes unacknowledged for 1 s.
    # The worker then moves to the next node of CELERY_BROKER_URL.
    broker_heartbeat=10,
    # When the broker connection is lost, the broker hands the unacknowledged
    # messages of the tasks running here to another worker (acks_late): stop
    # them here rather than run each twice at once.
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # A result that cannot be stored while Redis restarts is stored again,
    # with backoff up to 2 s between attempts for about a minute, instead of lost.
    result_backend_always_retry=True,
    result_backend_max_retries=30,
    result_backend_max_sleep_between_retries_ms=2000,
    # A Redis that accepts connections and never answers fails the attempt
    # (then retried) instead of holding the process forever.
    redis_socket_connect_timeout=settings.REDIS_TIMEOUT,
    redis_socket_timeout=settings.REDIS_TIMEOUT,
    # Find dead Redis connections before a task tries to store its result.
    redis_backend_health_check_interval=30,
    redis_socket_keepalive=True,
    # Task events for a Celery monitor (WORKER_SEND_TASK_EVENTS).
    worker_send_task_events=settings.WORKER_SEND_TASK_EVENTS,
    # Celery's consumer, with what worker/consumer.py changes of it.
    worker_consumer="worker.consumer:WorkerConsumer",
)
# The heartbeat and ready files of the image's healthcheck (healthcheck.sh).
celery_app.steps["consumer"].add(HealthFiles)
# The end of each task that RabbitMQ dead-lettered (worker/dead_letters.py).
celery_app.steps["consumer"].add(DeadLetters)
