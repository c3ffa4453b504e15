"""The dead-letter queue of the queue this worker consumes, and what the worker
does with what arrives there.

Every task queue is declared with a dead-letter queue, `<queue>.dead-letters`,
reached through the default exchange. RabbitMQ moves a message there when it
expires in the queue before any worker took it (TASK_EXPIRES, or a waiting
route's timeout), or when a worker rejects it for good (a format this worker
refuses). Then no worker will run it, and nobody would tell: its record would
stay PENDING until TASK_LOST_AFTER. A consumer step here reads those messages
without decoding them (their headers carry the task's id) and stores the
task's end, REVOKED with the reason, where the API waits for it.

The API declares the same arguments (api/taskengine/dead_letters.py): RabbitMQ
refuses a queue declared again with other ones.
"""

import logging
from typing import Any

from celery import bootsteps, states
from celery.app.amqp import AMQP, Queues
from celery.worker.consumer import Consumer
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer as MessageConsumer

logger = logging.getLogger(__name__)

# What RabbitMQ says in x-first-death-reason, as the record will say it.
REASONS = {
    "expired": "expired in the queue before a worker took it",
    "rejected": "refused by a worker",
}
# A message that went back to the queue when the worker running it was lost,
# then expired there: the task had started.
EXPIRED_AFTER_START = "expired in the queue after the worker that started it was lost"
# Dead letters read ahead of their acknowledgement.
PREFETCH = 16


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead-letters"


def queue_arguments(queue: str) -> dict[str, str]:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letter_queue(queue)}


def task_queue(name: str) -> Queue:
    """A task queue as Celery declares one by default (bound to a direct
    exchange of its name), with its dead-letter queue."""
    return Queue(name, Exchange(name), routing_key=name, queue_arguments=queue_arguments(name))


class DeadLetteringQueues(Queues):  # type: ignore[misc]
    """The queues Celery makes on demand (a chain's next task's, by its name),
    each with its dead-letter queue."""

    def new_missing(self, name: str) -> Any:
        queue = super().new_missing(name)
        queue.queue_arguments = {**(queue.queue_arguments or {}), **queue_arguments(name)}
        return queue


class DeadLetteringAMQP(AMQP):  # type: ignore[misc]
    queues_cls = DeadLetteringQueues


class DeadLetters(bootsteps.ConsumerStep):  # type: ignore[misc]
    """Store the end of each task whose message was dead-lettered."""

    def __init__(self, parent: Consumer, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app = parent.app
        self.consumed_queue = parent.app.conf.task_default_queue

    def get_consumers(self, channel: Any) -> list[MessageConsumer]:
        name = dead_letter_queue(self.consumed_queue)
        queue = Queue(name, Exchange(""), routing_key=name, durable=True)
        return [
            MessageConsumer(
                channel, queues=[queue], on_message=self.on_message, prefetch_count=PREFETCH
            )
        ]

    def on_message(self, message: Message) -> None:
        headers = message.headers or {}
        task_id = headers.get("id")
        death = headers.get("x-first-death-reason", "")
        reason = REASONS.get(death, "dead-lettered")
        backend = self.app.backend
        # A worker that refused a task may have stored why (NotRegistered):
        # the first end stays. A message without a task id has no record.
        stored = backend.get_state(task_id) if task_id else None
        if stored is not None and stored not in states.READY_STATES:
            if death == "expired" and stored != states.PENDING:
                reason = EXPIRED_AFTER_START
            backend.mark_as_revoked(task_id, reason=reason)
            logger.info("task %s (%s): %s", task_id, headers.get("task"), reason)
        message.ack()
