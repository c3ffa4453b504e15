"""Start the API as uvicorn processes for a benchmark, and stop them after."""

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testkit import background_process, free_port

API_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def api_server(**environment: str) -> Iterator[str]:
    """One uvicorn process (no access log, as in production); yields its base URL."""
    with api_process(**environment) as (base, _):
        yield base


@contextmanager
def api_process(**environment: str) -> Iterator[tuple[str, int]]:
    """The same; yields its base URL and its process id (to read its memory)."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)),
        *("--no-access-log", "--log-level", "warning"),
    ]
    with background_process(command, API_ROOT, environment) as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process)
        yield base, process.pid


def wait_for_health(base: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the API did not answer within {timeout}s")
