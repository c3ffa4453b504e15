"""Start the API in uvicorn processes for a benchmark, read the CPU time they
use, and stop them after."""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from testkit import background_process, free_port

API_ROOT = Path(__file__).resolve().parents[1]
API_APP_PATH = "app.main:app"
API_HEALTH_PATH = "/api/v1/health"


@contextmanager
def api_server(**environment: str) -> Iterator[str]:
    """One uvicorn process (no access log, as in production); yields its base URL."""
    with api_process(**environment) as (base, _):
        yield base


@contextmanager
def api_process(**environment: str) -> Iterator[tuple[str, int]]:
    """The same; yields its base URL and its process id (to read its memory)."""
    with uvicorn_process(environment) as served:
        yield served


@contextmanager
def uvicorn_process(
    environment: Mapping[str, str], *, workers: int = 1
) -> Iterator[tuple[str, int]]:
    """uvicorn serving the API (no access log, as in production) with `workers`
    processes, once it answers; yields its base URL and the id of uvicorn's
    own process (with more than one worker, the one that started them)."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", API_APP_PATH, "--port", str(port)),
        *("--workers", str(workers), "--no-access-log", "--log-level", "warning"),
    ]
    with background_process(command, API_ROOT, dict(environment)) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base + API_HEALTH_PATH, process)
        yield base, process.pid


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc (Linux): with --workers, uvicorn's
    own process only supervises, and the workers it starts serve."""
    tree = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            tree.extend(process_tree(int(child)))
    return tree


# The services of a task's round trip, by their command names in /proc: every
# PostgreSQL process, RabbitMQ's Erlang VM, Redis. Those on other machines
# (or in containers of another PID namespace) are not seen: they count 0.
SERVICES = {"PostgreSQL": "postgres", "RabbitMQ": "beam.smp", "Redis": "redis-server"}


def services_cpu_seconds() -> dict[str, float]:
    """CPU time used so far by each of SERVICES, summed over its processes here."""
    spent = dict.fromkeys(SERVICES, 0.0)
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
            for service, command in SERVICES.items():
                if name == command:
                    spent[service] += own_cpu_seconds(int(comm.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return spent


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by `pid` and all its descendants."""
    return sum(own_cpu_seconds(member) for member in process_tree(pid))


def own_cpu_seconds(pid: int) -> float:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat) of one process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Field 2, the command name, is in parentheses and may hold spaces: split
    # what follows its closing parenthesis, which starts at field 3.
    fields = stat.rpartition(")")[2].split()
    user_ticks, system_ticks = int(fields[14 - 3]), int(fields[15 - 3])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")
