"""The files the image's healthcheck reads (worker/healthcheck.sh), kept by the
worker's main process: a consumer step (Celery's bootsteps) touches the
heartbeat on the timer that also drives the pool, so that it goes stale when
that process is stuck, and holds the ready file while the task consumer runs.
When the broker connection is lost, Celery stops the consumer (not ready any
more) and starts it again once connected; the heartbeat is armed again then."""

import tempfile
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer

# Seconds between two beats; healthcheck.sh calls a heartbeat stale after 30.
HEARTBEAT_SECONDS = 5.0


def health_file(name: str) -> Path:
    """worker.alive or worker.ready, in the temporary directory ($TMPDIR, else
    /tmp): writable where the root filesystem is not."""
    return Path(tempfile.gettempdir()) / f"worker.{name}"


class HealthFiles(bootsteps.StartStopStep):  # type: ignore[misc]
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Consumer, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._beating: Any = None  # the timer's entry

    def start(self, parent: Consumer) -> None:
        beat()
        health_file("ready").touch()
        self._beating = parent.timer.call_repeatedly(HEARTBEAT_SECONDS, beat)

    def stop(self, parent: Consumer) -> None:
        health_file("ready").unlink(missing_ok=True)
        if self._beating is not None:
            self._beating.cancel()
            self._beating = None

    def shutdown(self, parent: Consumer) -> None:
        self.stop(parent)
        health_file("alive").unlink(missing_ok=True)


def beat() -> None:
    health_file("alive").touch()
