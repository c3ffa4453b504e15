"""What one check of a worker's health costs: the image's healthcheck, which reads
the two files the worker keeps (worker/healthcheck.sh), against a ping of
the worker's node through the broker by Celery's own command (`celery inspect
ping`): a Python process with the Celery app and a round trip through the
broker, as the image's check was before (it called the app's control.ping).

Run from api/: `../.venv/bin/python -m benchmarks.worker_health` (part of `make
bench`). It starts a worker on a queue of its own, runs each check `--count`
times, one after the other in alternating rounds, and prints the CPU (user +
system, of the check's processes) and the wall time of one check, and their
ratios.
"""

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, get_settings
from testkit import WORKER_ROOT, celery_client, celery_worker


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """CPU seconds and wall seconds of one run of the command, which must succeed."""
    cpu, began = children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=WORKER_ROOT, env=environment, check=True, capture_output=True)
    return children_cpu() - cpu, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10, help="runs of each check")
    args = parser.parse_args()

    settings = get_settings()
    queue = f"bench.health.{uuid.uuid4().hex[:8]}"
    node = f"bench-health-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    client = celery_client(
        settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER, QUEUE_TYPE
    )
    checks = {
        "ping through the broker (celery inspect ping)": [
            *(sys.executable, "-m", "celery", "--app", "worker.celery_app", "inspect", "ping"),
            *("--destination", node, "--timeout", "5"),
        ],
        "the image's healthcheck (healthcheck.sh --ready)": ["sh", "healthcheck.sh", "--ready"],
    }
    spent: dict[str, list[tuple[float, float]]] = {label: [] for label in checks}
    try:
        with tempfile.TemporaryDirectory() as health_dir:
            environment = {**os.environ, "TMPDIR": health_dir, "CELERY_TASK_QUEUE": queue}
            with celery_worker(client, queue, node, ["--loglevel=WARNING"], TMPDIR=health_dir):
                for _ in range(args.count):
                    for label, command in checks.items():
                        spent[label].append(timed(command, environment))
    finally:
        client.close()

    python = sys.version.split()[0]
    print(f"\nOne check of a worker's health, medians of {args.count} (Python {python}):")
    medians = {
        label: (statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs))
        for label, runs in spent.items()
    }
    for label, (cpu, wall) in medians.items():
        print(f"  {label:<46} {cpu * 1000:8.1f} ms CPU  {wall * 1000:8.1f} ms")
    (ping_cpu, ping_wall), (files_cpu, files_wall) = medians.values()
    print(
        f"  the healthcheck / the ping: {files_cpu / ping_cpu:.3f}x the CPU,"
        f" {files_wall / ping_wall:.3f}x the time"
    )


if __name__ == "__main__":
    main()
