"""How every task queue is declared: its type (EngineConfig.queue_type), and
its dead-letter queue, `<queue>.dead-letters`, reached through the default
exchange. RabbitMQ moves a message that expired in its queue, that a worker
rejected for good, or that a quorum queue handed out too often, to the
dead-letter queue; the workers read it and store how the task ended
(worker/worker/dead_letters.py), so that its record ends within seconds
instead of at TASK_LOST_AFTER.

The workers declare every queue the same way (the same rule in
worker/worker/queues.py): RabbitMQ refuses a queue declared again with other
arguments.
"""

from typing import Any

from celery.app.amqp import AMQP, Queues
from kombu.entity import Exchange, Queue

# How many more times a quorum queue hands out a message whose worker process
# was lost, before it dead-letters it.
DELIVERY_LIMIT = 5


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead-letters"


def queue_arguments(queue: str, queue_type: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
    }
    if queue_type == "quorum":
        arguments |= {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
    return arguments


def dead_letter_queue_arguments(queue_type: str) -> dict[str, Any]:
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def task_queue(name: str, queue_type: str) -> Queue:
    """A task queue bound to an exchange of its name, as Celery declares one;
    a topic exchange for quorum queues, the only kind through which Celery's
    native delayed delivery (countdown, ETA) reaches a queue."""
    exchange = Exchange(name, type="topic" if queue_type == "quorum" else "direct")
    return Queue(
        name, exchange, routing_key=name, queue_arguments=queue_arguments(name, queue_type)
    )


class TaskQueues(Queues):  # type: ignore[misc]
    """Celery's queues made on demand (a task's queue, by its name), declared
    like the others."""

    queue_type = "classic"

    def new_missing(self, name: str) -> Queue:
        return task_queue(name, self.queue_type)


class TaskQueuesAMQP(AMQP):  # type: ignore[misc]
    """Celery's AMQP with the queues above, of the app's task_default_queue_type."""

    queues_cls = TaskQueues

    def Queues(self, *args: Any, **kwargs: Any) -> TaskQueues:
        queues: TaskQueues = super().Queues(*args, **kwargs)
        queues.queue_type = self.app.conf.task_default_queue_type
        return queues
