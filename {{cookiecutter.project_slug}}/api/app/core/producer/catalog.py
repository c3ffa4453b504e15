"""The worker's tasks, known by name only: the API never imports worker code.

Every signature carries its name, queue, serializer and expiry explicitly.
"""

from datetime import datetime

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from app.core.producer.serialization import TASK_SERIALIZER

WORKER_NAME = "{{ cookiecutter.worker_name }}"
INTEGER_MULTIPLICATION = f"{WORKER_NAME}.integer_multiplication"
INTEGERS_SUM = f"{WORKER_NAME}.integers_sum"
LONG_RUNNING = f"{WORKER_NAME}.long_running"


class Catalog:
    """Signatures of the worker's tasks, bound to a queue and an expiry.

    task() makes one task's signature; each other method builds what one
    endpoint sends, its keyword arguments the fields of the endpoint's body
    (app/schemas/task.py). Long tasks go to a queue of their own, served by
    workers of their own: short ones never wait behind them.
    """

    def __init__(self, client: Celery, queue: str, long_queue: str) -> None:
        self.client = client
        self.queue = queue
        self.long_queue = long_queue

    def task(
        self, name: str, *args: object, expires: datetime, queue: str | None = None
    ) -> Signature:
        return self.client.signature(
            name,
            args=args,
            queue=queue or self.queue,
            serializer=TASK_SERIALIZER,
            expires=expires,
        )

    def integer_multiplication(self, *, integer: int, expires: datetime) -> Signature:
        return self.task(INTEGER_MULTIPLICATION, integer, expires=expires)

    def integers_sum(self, *, integers: list[int], expires: datetime) -> Signature:
        return self.task(INTEGERS_SUM, integers, expires=expires)

    def long_running(self, *, seconds: float, steps: int, expires: datetime) -> Signature:
        """Work for `seconds`, reporting PROGRESS after each of `steps` steps."""
        return self.task(LONG_RUNNING, seconds, steps, expires=expires, queue=self.long_queue)

    def chain(self, *, integer: int, size: int, expires: datetime) -> Signature:
        """integer doubled size + 1 times: integer * 2 ** (size + 1)."""
        first = self.task(INTEGER_MULTIPLICATION, integer, expires=expires)
        rest = [self.task(INTEGER_MULTIPLICATION, expires=expires) for _ in range(size)]
        return chain(first, *rest)

    def group(self, *, integer: int, size: int, expires: datetime) -> Signature:
        """size doublings of integer in parallel: [integer * 2] * size."""
        return group(
            self.task(INTEGER_MULTIPLICATION, integer, expires=expires) for _ in range(size)
        )

    def chord(self, *, integer: int, size: int, expires: datetime) -> Signature:
        """The group above, then the sum of its results: integer * 2 * size."""
        header = self.group(integer=integer, size=size, expires=expires)
        return chord(header, self.task(INTEGERS_SUM, expires=expires))
