"""The image's healthcheck (healthcheck.sh) reads the files the worker's main
process keeps (worker/heartbeat.py): alive while that process runs its timer,
ready while it consumes its queue, neither once it stopped. Through a lost
broker connection: api/tests/test_faults.py."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

from tests.conftest import WORKER_ROOT, worker_process
from worker.heartbeat import HEARTBEAT_SECONDS, health_file

# healthcheck.sh's default.
STALE_AFTER = 30


@pytest.fixture
def health_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of the worker under test, and of this process."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(directory))
    return directory


def check(health_dir: Path, *arguments: str) -> int:
    """The exit code of the healthcheck, as the image runs it."""
    environment = {**os.environ, "TMPDIR": str(health_dir)}
    command = ["sh", "healthcheck.sh", *arguments]
    return subprocess.run(command, cwd=WORKER_ROOT, env=environment, check=False).returncode


def test_a_running_worker_is_alive_and_ready_and_neither_once_stopped(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    node = f"health-{uuid.uuid4().hex[:8]}@localhost"
    queue = f"test.health.{uuid.uuid4().hex[:12]}"
    with worker_process(queue, node, tmp_path / "worker.log", TMPDIR=str(health_dir)):
        assert check(health_dir) == 0
        assert check(health_dir, "--ready") == 0
        first = health_file("alive").stat().st_mtime
        time.sleep(HEARTBEAT_SECONDS + 1)
        assert health_file("alive").stat().st_mtime > first, "the heartbeat did not beat again"
    assert check(health_dir) == 1
    assert check(health_dir, "--ready") == 1


def test_a_stuck_main_process_stops_beating(
    celery_app: Celery, health_dir: Path, tmp_path: Path
) -> None:
    node = f"stuck-{uuid.uuid4().hex[:8]}@localhost"
    queue = f"test.health.{uuid.uuid4().hex[:12]}"
    # A limit that a few missed beats pass, instead of the default's 30 s.
    soon_stale = str(int(HEARTBEAT_SECONDS) + 2)
    with worker_process(queue, node, tmp_path / "worker.log", TMPDIR=str(health_dir)):
        pid = int(celery_app.control.inspect(destination=[node]).stats()[node]["pid"])
        assert check(health_dir, soon_stale) == 0
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(int(soon_stale) + 1)
            assert check(health_dir, soon_stale) == 1
            assert check(health_dir) == 0  # not stale yet by the default
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + HEARTBEAT_SECONDS + 2
        while check(health_dir, soon_stale) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert check(health_dir, soon_stale) == 0, "the heartbeat did not come back"


def test_a_heartbeat_older_than_its_limit_is_not_alive(health_dir: Path) -> None:
    assert check(health_dir) == 1  # no file at all
    beat = health_file("alive")
    beat.touch()
    assert check(health_dir) == 0
    os.utime(beat, (time.time() - STALE_AFTER - 1,) * 2)
    assert check(health_dir) == 1
    # Alive but not consuming (no ready file): not ready.
    beat.touch()
    assert check(health_dir, "--ready") == 1
    health_file("ready").touch()
    assert check(health_dir, "--ready") == 0
