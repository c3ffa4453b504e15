"""The worker's consumer: Celery's, with two changes.

- A message whose body does not decode is rejected, so dead-lettered, and its
  end stored (worker/dead_letters.py): Celery acknowledges it, and then nothing
  tells its end.
- With quorum queues, Celery's native delayed delivery (worker/queues.py) is
  set up through the node the worker is connected to. Celery's own step sets it
  up through every node of CELERY_BROKER_URL at each connection, and retries a
  node that is down for about ten seconds before the worker consumes again;
  the nodes of a cluster share their exchanges and queues, so one is enough.
"""

import logging

from celery import bootsteps
from celery.worker.consumer import Consumer
from celery.worker.consumer.tasks import Tasks
from kombu.message import Message
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

logger = logging.getLogger(__name__)

CELERYS_DELAYED_DELIVERY = "celery.worker.consumer.delayed_delivery:DelayedDelivery"
if CELERYS_DELAYED_DELIVERY not in Consumer.Blueprint.default_steps:
    # A Celery release that moved its step: replacing it would do nothing.
    raise RuntimeError(f"Celery has no step {CELERYS_DELAYED_DELIVERY} to replace")


class DelayedDelivery(bootsteps.StartStopStep):  # type: ignore[misc]
    """The delayed-delivery exchanges and queues, and the bindings to them of
    the queues this worker consumes, declared through the node of its
    connection."""

    requires = (Tasks,)

    def include_if(self, parent: Consumer) -> bool:
        return bool(parent.app.conf.task_default_queue_type == "quorum")

    def start(self, parent: Consumer) -> None:
        conf = parent.app.conf
        with parent.connection.clone() as connection:
            declare_native_delayed_delivery_exchanges_and_queues(
                connection, conf.broker_native_delayed_delivery_queue_type
            )
            # The queues this worker consumes: declared by now, exchange too.
            for queue in parent.task_consumer.queues:
                bind_queue_to_native_delayed_delivery_exchange(connection, queue)


class WorkerConsumer(Consumer):  # type: ignore[misc]
    class Blueprint(Consumer.Blueprint):  # type: ignore[misc]
        default_steps = tuple(
            f"{__name__}:{DelayedDelivery.__name__}" if step == CELERYS_DELAYED_DELIVERY else step
            for step in Consumer.Blueprint.default_steps
        )

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        logger.critical(
            "Refused a message whose body does not decode (%r); its headers: %r",
            exc,
            message.headers,
        )
        message.reject(requeue=False)
