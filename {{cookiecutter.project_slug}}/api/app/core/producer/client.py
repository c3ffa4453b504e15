"""A Celery app that only produces: it builds messages (the publisher sends
them) and decodes results. The tasks themselves live in the worker."""

from typing import Any

from celery.backends.redis import RedisBackend

from app.core.config import Settings
from app.core.producer.chord_sizes import ChordSize
from app.core.producer.messages import MessageBuildingCelery, capture_in_progress
from app.core.producer.serialization import ACCEPT_CONTENT, TASK_SERIALIZER


class PublishOnlyRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis backend, without its blocking result consumer.

    Celery subscribes to a task's channel as it sends the task, so that a later
    AsyncResult.get() can block on it. The API waits through its own async
    listener (results.py) instead: that subscription would only pile up unread
    messages on a connection nobody reads.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        # Kept with the messages being built; the publisher writes it (chord_sizes.py).
        capture_in_progress().outgoing.chord_sizes.append(
            ChordSize.of_group(self, group_id, chord_size)
        )


def create_celery_client(settings: Settings) -> MessageBuildingCelery:
    backend = f"{__name__}:{PublishOnlyRedisBackend.__name__}+{settings.CELERY_RESULT_BACKEND_URL}"
    client = MessageBuildingCelery(
        "{{ cookiecutter.worker_name }}-producer",
        broker=settings.CELERY_BROKER_URL,
        backend=backend,
        set_as_current=False,
    )
    client.conf.update(
        # Where tasks go unless a signature names its queue (ours all do).
        task_default_queue=settings.CELERY_TASK_QUEUE,
        task_serializer=TASK_SERIALIZER,
        result_serializer=TASK_SERIALIZER,
        accept_content=ACCEPT_CONTENT,
        result_accept_content=ACCEPT_CONTENT,
        # The API publishes through its own client (publisher.py); whatever
        # borrows this one to talk to the broker (the tests' worker pings)
        # must fail fast when the broker is dead.
        broker_connection_timeout=settings.CELERY_PUBLISH_TIMEOUT,
        broker_connection_max_retries=1,
    )
    return client
