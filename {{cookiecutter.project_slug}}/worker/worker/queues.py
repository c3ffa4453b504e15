"""How every task queue is declared: its type (QUEUE_TYPE), and its dead-letter
queue, `<queue>.dead-letters`, reached through the default exchange.

RabbitMQ moves a message to the dead-letter queue when it expires in the queue
before any worker took it (TASK_EXPIRES, or a waiting route's timeout), when a
worker rejects it for good (a body that does not decode, a format this worker
refuses), or, in a quorum queue, after DELIVERY_LIMIT deliveries whose worker
process was lost each time. The workers store how each such task ended
(worker/dead_letters.py).

The API declares every queue the same way (api/taskengine/queues.py):
RabbitMQ refuses a queue declared again with other arguments.
"""

from typing import Any

from celery.app.amqp import AMQP, Queues
from kombu.entity import Exchange, Queue

# A quorum queue hands a message out this many times more when the worker
# process running it is lost, then dead-letters it: a task that kills its
# process (memory, a crash in C code) stops instead of taking down process
# after process. A worker's restart also returns the messages it had reserved,
# so the limit leaves room for a few of those.
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
    """A task queue bound to an exchange of its name, as Celery declares one.
    With quorum queues that exchange is a topic one: Celery's native delayed
    delivery (a countdown, an ETA, a retry's backoff) reaches a queue only
    through a topic exchange, and a worker would otherwise hold each delayed
    task, and the process slot it reserved, until its time."""
    exchange = Exchange(name, type="topic" if queue_type == "quorum" else "direct")
    return Queue(
        name, exchange, routing_key=name, queue_arguments=queue_arguments(name, queue_type)
    )


class TaskQueues(Queues):  # type: ignore[misc]
    """The queues Celery makes on demand (a chain's next task's, by its name),
    declared like the others."""

    queue_type = "classic"

    def new_missing(self, name: str) -> Queue:
        return task_queue(name, self.queue_type)


class TaskQueuesAMQP(AMQP):  # type: ignore[misc]
    queues_cls = TaskQueues

    def Queues(self, *args: Any, **kwargs: Any) -> TaskQueues:
        queues: TaskQueues = super().Queues(*args, **kwargs)
        queues.queue_type = self.app.conf.task_default_queue_type
        return queues
