"""The image's healthcheck (healthcheck.sh) reads the files the worker's main
process keeps (worker/heartbeat.py): alive while that process runs its timer,
ready while it consumes its queue, neither once it stopped. Through a lost
broker connection: api/tests/test_faults.py."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from celery import Celery

from tests.conftest import WORKER_ROOT, worker_environment, worker_process
from worker.heartbeat import HEARTBEAT_SECONDS, health_file

# healthcheck.sh's default.
STALE_AFTER = 30
# A limit that a beat or two missed passes: stale soon after the beats stop.
SOON_STALE = str(int(HEARTBEAT_SECONDS) + 2)


def check(health_dir: Path, *arguments: str) -> int:
    """The exit code of the healthcheck, as the image runs it."""
    environment = {**os.environ, "TMPDIR": str(health_dir)}
    command = ["sh", "healthcheck.sh", *arguments]
    return subprocess.run(command, cwd=WORKER_ROOT, env=environment, check=False).returncode


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def worker_keeping_health(
    name: str, health_dir: Path, tmp_path: Path
) -> AbstractContextManager[str]:
    """A worker of its own (worker_process), its health files in `health_dir`."""
    node = f"{name}-{uuid.uuid4().hex[:12]}@localhost"
    return worker_process(queue_of(node), node, tmp_path / "worker.log", TMPDIR=str(health_dir))


def queue_of(node: str) -> str:
    """The queue of worker_keeping_health's worker of that node name."""
    return f"test.{node.split('@')[0]}"


def main_process(app: Celery, node: str) -> int:
    stats = app.control.inspect(destination=[node], timeout=5).stats()
    return int(stats[node]["pid"])


def test_a_running_worker_is_alive_and_ready_and_neither_once_stopped(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    with worker_keeping_health("health", health_dir, tmp_path):
        assert check(health_dir) == 0
        assert check(health_dir, "--ready") == 0
        first = health_file("alive").stat().st_mtime
        beat_again = lambda: health_file("alive").stat().st_mtime > first  # noqa: E731
        assert within(HEARTBEAT_SECONDS * 2, beat_again), "the heartbeat did not beat again"
    assert check(health_dir) == 1
    assert check(health_dir, "--ready") == 1
    assert not health_file("alive").exists() and not health_file("ready").exists()


def test_a_stuck_main_process_stops_beating(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    with worker_keeping_health("stuck", health_dir, tmp_path) as node:
        pid = main_process(celery_app, node)
        assert check(health_dir, SOON_STALE) == 0
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(int(SOON_STALE) + 1)
            assert check(health_dir, SOON_STALE) == 1
            assert check(health_dir) == 0  # not stale yet by the default
        finally:
            os.kill(pid, signal.SIGCONT)
        back = lambda: check(health_dir, SOON_STALE) == 0  # noqa: E731
        assert within(HEARTBEAT_SECONDS * 2, back), "the heartbeat did not come back"


def test_files_left_by_a_killed_worker_do_not_count_for_the_next(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    """A worker killed leaves its files; the next one in the same container
    starts by removing them, so it is not ready before it consumes."""
    health_file("alive").touch()
    health_file("ready").touch()
    node = f"next-{uuid.uuid4().hex[:8]}@localhost"
    queue = f"test.health.{uuid.uuid4().hex[:12]}"
    # Not connected: the broker is a port that refuses, so the consumer never starts.
    refused = "amqp://guest:guest@127.0.0.1:1//"
    environment = {
        **worker_environment(),
        **{"TMPDIR": str(health_dir), "CELERY_BROKER_URL": refused, "CELERY_TASK_QUEUE": queue},
    }
    command = [sys.executable, "-m", "celery", "--app", "worker.celery_app", "worker"]
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [*command, "--hostname", node], cwd=WORKER_ROOT, env=environment, stdout=log, stderr=log
        )
    try:
        assert within(20, lambda: not health_file("ready").exists())
        assert check(health_dir, "--ready") == 1
    finally:
        worker.kill()
        worker.wait()


def test_a_heartbeat_older_than_its_limit_or_from_the_future_is_not_alive(
    health_dir: Path,
) -> None:
    assert check(health_dir) == 1  # no file at all
    beat = health_file("alive")
    beat.touch()
    assert check(health_dir) == 0
    os.utime(beat, (time.time() - STALE_AFTER - 1,) * 2)
    assert check(health_dir) == 1
    os.utime(beat, (time.time() + 3600,) * 2)
    assert check(health_dir) == 1
    # Alive but not consuming (no ready file): not ready.
    beat.touch()
    assert check(health_dir, "--ready") == 1
    health_file("ready").touch()
    assert check(health_dir, "--ready") == 0
    assert check(health_dir, "30", "--ready") == 2  # arguments in the wrong order
