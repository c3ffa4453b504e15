"""The rendered API against the design this template replaces, and against an
earlier render of the template, in one run: `make bench-designs` (README).

Run with the python of a render's virtual environment, with asgiref in it:

    python benchmarks/compare_designs.py --render ../my_service \
        [--previous OTHER_RENDER --previous-python OTHER_RENDER/.venv/bin/python]

One worker of the render (64 threads) on a queue of this run's own serves
every design; each API runs in a uvicorn process of its own, on a database of
its own, and is driven by the render's own load generator (benchmarks/
http_load.py) with the same request: a waiting integer multiplication. The
rounds are interleaved (design after design, each round starting with the
next design) and the medians printed, with the CPU each server spent per answered request (from
/proc) and the ratios between them.
"""

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = b'{"integer": 21}'
SUPERUSER = ("bench@example.com", secrets.token_urlsafe(16))


@dataclass
class Design:
    label: str
    base: str
    pid: int
    path: str
    token: str | None = None
    latency: list[float] = field(default_factory=list)  # p50 of each round, seconds
    rate: list[float] = field(default_factory=list)  # requests/s at 64 connections
    cpu: list[float] = field(default_factory=list)  # seconds per answered request


def cpu_seconds(pid: int) -> float:
    """User and system time of a process and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def process(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    started = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    try:
        yield started
    finally:
        started.terminate()
        try:
            started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.kill()


@contextmanager
def uvicorn(
    python: str, app: str, cwd: Path, env: dict[str, str], health: str
) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [python, "-m", "uvicorn", app, "--port", str(port), "--no-access-log"]
    with process([*command, "--log-level", "warning"], cwd, env) as served:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not answers(base + health):
            if served.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} in {cwd} did not start")
            time.sleep(0.2)
        yield base, served.pid


def log_in(base: str) -> str:
    form = urllib.parse.urlencode({"username": SUPERUSER[0], "password": SUPERUSER[1]}).encode()
    with urllib.request.urlopen(f"{base}/api/v1/auth/token", data=form, timeout=30) as answer:
        return str(json.loads(answer.read())["access_token"])


@contextmanager
def api(label: str, render: Path, python: str, env: dict[str, str]) -> Iterator[Design]:
    """A render's API on a database of its own, migrated with its own command."""
    database = f"bench_designs_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    env = {**env, "POSTGRES_DATABASE_URL": url}
    migrate = "commands.migrate" if (render / "api/commands/migrate.py").exists() else "app.migrate"
    subprocess.run(
        [python, "-m", migrate],
        cwd=render / "api",
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    try:
        with uvicorn(python, "app.main:app", render / "api", env, "/api/v1/health") as (base, pid):
            design = Design(label, base, pid, "/api/v1/tasks/integer-multiplication")
            design.token = log_in(base)
            yield design
    finally:
        drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", drop], check=False)


def measure(design: Design, run_load, run, count: int, seconds: float) -> None:
    headers = {"Content-Type": "application/json"}
    if design.token:
        headers["Authorization"] = f"Bearer {design.token}"
    url = design.base + design.path

    def load(concurrency: int, **limits: float) -> object:
        return run_load(
            url, concurrency=concurrency, method="POST", headers=headers, body=BODY, **limits
        )

    one = run(load(1, requests_per_connection=count))
    before = cpu_seconds(design.pid)
    many = run(load(64, duration=seconds))
    spent = cpu_seconds(design.pid) - before
    for result in (one, many):
        assert set(result.statuses) == {200}, (design.label, result.statuses)
    design.latency.append(one.median)
    design.rate.append(many.rate)
    design.cpu.append(spent / many.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path, required=True)
    parser.add_argument("--previous", type=Path)
    parser.add_argument("--previous-python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200, help="requests at concurrency 1")
    parser.add_argument("--seconds", type=float, default=8.0, help="per run at 64 connections")
    args = parser.parse_args()
    render = args.render.resolve()
    sys.path.insert(0, str(render / "api"))
    from app.core.config import TASK_SERIALIZER, WORKER_NAME, get_settings

    settings = get_settings()
    from benchmarks.http_load import run, run_load  # the render's load generator

    queue = f"bench.designs.{uuid.uuid4().hex[:8]}"
    env = {
        "CELERY_TASK_QUEUE": queue,
        "CELERY_LONG_TASK_QUEUE": queue,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ENVIRONMENT": "test",
        "FIRST_SUPERUSER_EMAIL": SUPERUSER[0],
        "FIRST_SUPERUSER_PASSWORD": SUPERUSER[1],
        "LOGIN_ATTEMPTS_PER_ADDRESS": "10000/minute",
        "C_FORCE_ROOT": "1",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND_URL": settings.CELERY_RESULT_BACKEND_URL,
    }
    node = f"designs-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    worker = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        f"--hostname={node}",
    ]
    worker += ["--pool=threads", "--concurrency=64", "--loglevel=WARNING", f"--queues={queue}"]
    worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with ExitStack() as stack:
        stack.enter_context(process(worker, render / "worker", env))
        designs = [stack.enter_context(api("this render's API", render, sys.executable, env))]
        if args.previous:
            python = args.previous_python or sys.executable
            designs.append(
                stack.enter_context(
                    api("the previous render's API", args.previous.resolve(), python, env)
                )
            )
        original_env = {
            **env,
            "ORIGINAL_TASK": f"{WORKER_NAME}.integer_multiplication",
            "ORIGINAL_QUEUE": queue,
            "ORIGINAL_SERIALIZER": TASK_SERIALIZER,
        }
        base, pid = stack.enter_context(
            uvicorn(sys.executable, "original_design:app", HERE, original_env, "/health")
        )
        designs.append(
            Design(
                "the original design (sync_to_async + polling)",
                base,
                pid,
                "/tasks/integer-multiplication",
            )
        )
        for design in designs:  # warm up: connections, pools, imports
            measure(design, run_load, run, 10, 1.0)
            design.latency.clear()
            design.rate.clear()
            design.cpu.clear()
        for round_ in range(args.rounds):
            # Each round starts with another design: none always follows the
            # same one (whose load may still be settling in the worker).
            turn = round_ % len(designs)
            for design in designs[turn:] + designs[:turn]:
                measure(design, run_load, run, args.count, args.seconds)
        report(designs, args, TASK_SERIALIZER)
    # Once the worker has stopped: a queue deleted under it is a lost connection.
    try:
        from testkit import celery_client, delete_queue

        client = celery_client(
            settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER
        )
        delete_queue(client, queue)
    except Exception as error:  # a leftover queue is no reason to lose the figures
        print(f"could not delete the queue {queue}: {error!r}")


def report(designs: list[Design], args: argparse.Namespace, serializer: str) -> None:
    print(
        f"Python {sys.version.split()[0]}, {serializer}, one worker (64 threads), "
        f"{args.rounds} interleaved rounds; medians: p50 at 1 connection ({args.count} requests), "
        f"requests/s and server CPU per request at 64 connections ({args.seconds:g} s)\n"
    )
    for design in designs:
        print(
            f"  {design.label:<48} p50 {statistics.median(design.latency) * 1000:7.2f} ms"
            f"  {statistics.median(design.rate):6.0f} req/s"
            f"  {statistics.median(design.cpu) * 1000:5.2f} ms CPU/request"
        )
    ours, *others = designs
    print()
    for other in others:
        rate = statistics.median(ours.rate) / statistics.median(other.rate)
        latency = statistics.median(ours.latency) / statistics.median(other.latency)
        print(
            f"  this render / {other.label}: {rate:.2f}x requests/s at 64, {latency:.2f}x p50 at 1"
        )


if __name__ == "__main__":
    main()
