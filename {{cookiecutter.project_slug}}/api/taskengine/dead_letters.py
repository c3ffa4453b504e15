"""Where a task queue's dead messages go. RabbitMQ moves a message that
expired in its queue, or that a worker rejected for good, to the queue's
dead-letter queue (`<queue>.dead-letters`, through the default exchange); the
workers read it and store how the task ended (worker/worker/dead_letters.py),
so that its record ends within seconds instead of at TASK_LOST_AFTER.

Every task queue is declared with these arguments, by the API (here) and by
the workers (the same rule in worker/worker/dead_letters.py): RabbitMQ refuses
a queue declared again with other ones.
"""

from typing import Any

from celery.app.amqp import AMQP, Queues


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead-letters"


def queue_arguments(queue: str) -> dict[str, str]:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letter_queue(queue)}


class DeadLetteringQueues(Queues):  # type: ignore[misc]
    """Celery's queues made on demand (a task's queue, by its name), each with
    its dead-letter queue."""

    def new_missing(self, name: str) -> Any:
        queue = super().new_missing(name)
        queue.queue_arguments = {**(queue.queue_arguments or {}), **queue_arguments(name)}
        return queue


class DeadLetteringAMQP(AMQP):  # type: ignore[misc]
    queues_cls = DeadLetteringQueues
