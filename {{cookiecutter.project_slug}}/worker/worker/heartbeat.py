"""The files the image's healthcheck reads (worker/healthcheck.sh), kept by the
worker's main process: a consumer step (Celery's bootsteps) touches the
heartbeat on the timer that also drives the pool (prefork's, solo's and
threads' alike), so that it goes stale when that process is stuck, and holds the
ready file while the task consumer runs.

When the broker connection is lost, Celery stops the consumer (no longer
ready) and starts it again once connected, when the heartbeat is armed again:
meanwhile it does not beat, so a liveness check's limit must outlast the
outages a worker should ride out. On a warm shutdown the ready file goes at
once, the heartbeat only at the end: a draining worker is alive. A task of the
solo pool runs on the same loop and holds the heartbeat for as long as it runs.
Eventlet and gevent pools are not supported."""

import os
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer

# Seconds between two beats; healthcheck.sh calls a heartbeat stale after 30.
HEARTBEAT_SECONDS = 5.0


def health_file(name: str) -> Path:
    """worker.alive or worker.ready in $TMPDIR, else /tmp, as healthcheck.sh
    reads them: writable where the root filesystem is not."""
    return Path(os.environ.get("TMPDIR") or "/tmp") / f"worker.{name}"


class HealthFiles(bootsteps.StartStopStep):  # type: ignore[misc]
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Consumer, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._beating: Any = None  # the timer's entry
        # A worker killed before may have left both behind, the heartbeat fresh.
        forget()

    def start(self, parent: Consumer) -> None:
        beat()
        health_file("ready").touch()
        self._beating = parent.timer.call_repeatedly(HEARTBEAT_SECONDS, beat)

    def stop(self, parent: Consumer) -> None:
        health_file("ready").unlink(missing_ok=True)
        # Stopping for good: the pool still finishes its tasks, alive meanwhile.
        if parent.blueprint.state != bootsteps.CLOSE:
            self._stop_beating(parent)

    def shutdown(self, parent: Consumer) -> None:
        self._stop_beating(parent)
        forget()

    def _stop_beating(self, parent: Consumer) -> None:
        if self._beating is not None:
            parent.timer.cancel(self._beating)
            self._beating = None


def beat() -> None:
    health_file("alive").touch()


def forget() -> None:
    for name in ("ready", "alive"):
        health_file(name).unlink(missing_ok=True)
