"""What the worker does with the messages RabbitMQ dead-lettered (the
dead-letter queue of the queue it consumes, worker/queues.py): no worker will
run those tasks, and nobody would tell, so their records would stay PENDING
until the API calls them LOST (TASK_LOST_AFTER). A consumer step reads them
without decoding them (their headers carry the task's id) and stores each
task's end, with the reason, where the API waits for it.
"""

import logging
from typing import Any

from celery import bootsteps, states
from celery.exceptions import BackendGetMetaError, BackendStoreError, WorkerLostError
from celery.worker.consumer import Consumer
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer as MessageConsumer

from worker.queues import DELIVERY_LIMIT, dead_letter_queue, dead_letter_queue_arguments

logger = logging.getLogger(__name__)

# What RabbitMQ says in x-first-death-reason, as the record will say it.
REASONS = {
    "expired": "expired in the queue before a worker took it",
    "rejected": "refused by a worker",
}
# A message that went back to the queue when the worker running it was lost,
# then expired there: the task had started.
EXPIRED_AFTER_START = "expired in the queue after the worker that started it was lost"
# Mostly a task that kills its process; a worker stopped mid-task, or one that
# could not store STARTED in Redis, also gives a message back to its queue.
DELIVERY_LIMIT_REACHED = (
    f"delivered {DELIVERY_LIMIT + 1} times without an end: each time the worker process"
    " running it was lost (or its worker stopped, or Redis was away)"
)
# Dead letters read ahead of their acknowledgement.
PREFETCH = 16


class DeadLetters(bootsteps.ConsumerStep):  # type: ignore[misc]
    """Store the end of each task whose message was dead-lettered."""

    def __init__(self, parent: Consumer, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app = parent.app

    def get_consumers(self, channel: Any) -> list[MessageConsumer]:
        conf = self.app.conf
        name = dead_letter_queue(conf.task_default_queue)
        arguments = dead_letter_queue_arguments(conf.task_default_queue_type)
        queue = Queue(name, Exchange(""), routing_key=name, queue_arguments=arguments)
        return [
            MessageConsumer(
                channel, queues=[queue], on_message=self.on_message, prefetch_count=PREFETCH
            )
        ]

    def on_message(self, message: Message) -> None:
        backend = self.app.backend
        try:
            self.store_the_end(message.headers or {})
        except (BackendGetMetaError, BackendStoreError, *backend.connection_errors):
            # Redis away past the backend's own retries. Raised from here, it
            # would stop the worker: the letter goes back to its queue instead.
            logger.warning("Cannot store the end of a dead-lettered task yet; back to its queue")
            message.requeue()
            return
        message.ack()

    def store_the_end(self, headers: dict[str, Any]) -> None:
        task_id = headers.get("id")
        death = headers.get("x-first-death-reason", "")
        backend = self.app.backend
        # A worker that refused a task may have stored why (NotRegistered):
        # the first end stays. A message without a task id has no record.
        stored = backend.get_state(task_id) if task_id else None
        if stored is not None and stored not in states.READY_STATES:
            if death == "delivery_limit":
                reason = DELIVERY_LIMIT_REACHED
                backend.mark_as_failure(task_id, WorkerLostError(reason))
            else:
                reason = REASONS.get(death, "dead-lettered")
                if death == "expired" and stored == states.STARTED:
                    reason = EXPIRED_AFTER_START
                backend.mark_as_revoked(task_id, reason=reason)
            logger.info("task %s (%s): %s", task_id, headers.get("task"), reason)
