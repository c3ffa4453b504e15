"""The rendered API against the designs a team would weigh it against, in one
run: `make bench` (README).

Run with the python of a render's virtual environment, with asgiref, taskiq,
taskiq-aio-pika and taskiq-redis in it (`make bench` installs them):

    python benchmarks/compare_designs.py --render ../my_service \
        [--previous OTHER_RENDER --previous-python OTHER_RENDER/.venv/bin/python]

The designs, all asked the same request (a waiting integer multiplication) by
the render's own load generator (benchmarks/http_load.py), each API in a uvicorn
process of its own:

- this render's API (and an earlier render's), on a database of its own;
- the design the template replaces (benchmarks/original_design.py);
- the async-native peer, FastAPI + taskiq (benchmarks/taskiq_peer.py), with
  its own worker, one async process;
- at one connection only, a plain blocking Celery client, send_task().get().

Each render has a worker of its own, started as its compose file starts it,
on a queue of this run's own; the original design and the plain client use
this render's. The rounds are interleaved
(design after design, each round starting with the next one) and the medians
printed: p50 at one connection, requests/s at 64, and the CPU each process of
the round trip spent per answered request at 64 (from /proc: the API, its
worker, RabbitMQ, Redis, PostgreSQL and the load generator), then the ratios.
The load generator and the readers of /proc are the render's own (its
benchmarks/http_load.py and benchmarks/servers.py).
"""

import argparse
import collections
import json
import math
import os
import re
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BODY = b'{"integer": 21}'
SUPERUSER = ("bench@example.com", secrets.token_urlsafe(16))
# The processes of a round trip whose CPU is read; the services' as the
# render's benchmarks/servers.py names them.
PARTS = ("API", "worker", "PostgreSQL", "RabbitMQ", "Redis", "load generator")
ORIGINAL = "the original design (sync_to_async + polling)"
PEER = "FastAPI + taskiq"


@dataclass
class Design:
    label: str
    base: str
    path: str
    api_pid: int
    worker_pid: int
    token: str | None = None
    latency: list[float] = field(default_factory=list)  # p50 of each round, seconds
    rate: list[float] = field(default_factory=list)  # requests/s at 64 connections
    # CPU seconds per answered request at 64 connections, per part, per round.
    cpu: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in PARTS})

    def cpu_median(self, part: str) -> float:
        return statistics.median(self.cpu[part])

    def total_cpu(self) -> float:
        """Median over rounds of the CPU per request of all but the load generator."""
        rounds = zip(*(self.cpu[part] for part in PARTS[:-1]), strict=True)
        return statistics.median(sum(spent) for spent in rounds)


@dataclass
class Tools:
    """What this script uses of the render's own benchmarks (imported from --render)."""

    run: Callable[..., Any]  # runs a load on the event loop
    run_load: Callable[..., Any]  # a load of HTTP requests
    cpu_seconds: Callable[[int], float]  # of a process and its descendants
    services_cpu_seconds: Callable[[], dict[str, float]]  # PostgreSQL, RabbitMQ, Redis


def cpu_by_part(design: Design, tools: Tools) -> dict[str, float]:
    """CPU seconds so far of every process of the design's round trip."""
    return {
        "API": tools.cpu_seconds(design.api_pid),
        "worker": tools.cpu_seconds(design.worker_pid),
        **tools.services_cpu_seconds(),
        "load generator": sum(os.times()[:2]),
    }


def headers(design: Design) -> dict[str, str]:
    sent = {"Content-Type": "application/json"}
    if design.token:
        sent["Authorization"] = f"Bearer {design.token}"
    return sent


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
def api(
    label: str, render: Path, python: str, env: dict[str, str], worker_pid: int
) -> Iterator[Design]:
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
            path = "/api/v1/tasks/integer-multiplication"
            design = Design(label, base, path, pid, worker_pid, log_in(base))
            yield design
    finally:
        drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", drop], check=False)


def measure(design: Design, tools: Tools, count: int, seconds: float) -> None:
    def load(concurrency: int, **limits: float) -> object:
        return tools.run_load(
            design.base + design.path,
            concurrency=concurrency,
            method="POST",
            headers=headers(design),
            body=BODY,
            **limits,
        )

    one = tools.run(load(1, requests_per_connection=count))
    before = cpu_by_part(design, tools)
    many = tools.run(load(64, duration=seconds))
    after = cpu_by_part(design, tools)
    for result in (one, many):
        assert set(result.statuses) == {200}, (design.label, result.statuses)
    design.latency.append(one.median)
    design.rate.append(many.rate)
    for part in PARTS:
        design.cpu[part].append((after[part] - before[part]) / many.count)


# py-spy, installed with the python that runs this (benchmarks/requirements.txt).
PY_SPY = str(Path(sys.executable).parent / "py-spy")
# A frame of py-spy's raw output: "function (path:line)".
FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?)(?::\d+)?\)$")


def package_of(path: str) -> str:
    """Who a sampled frame belongs to: a distribution, the standard library or the render."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    # py-spy names the others from their import root: asyncio/tasks.py, taskengine/...
    return path.lstrip("./").split("/", 1)[0].removesuffix(".py") or "?"


def profile(design: Design, tools: Tools, seconds: float) -> dict[str, collections.Counter]:
    """Samples of where the API and the worker spend their time at 64 connections
    (py-spy, 200 a second, without pausing them), counted by the package of the
    frame that was running."""
    spent: dict[str, collections.Counter] = {}
    with tempfile.TemporaryDirectory() as directory:
        samplers = {}
        for part, pid in (("API", design.api_pid), ("worker", design.worker_pid)):
            output = Path(directory) / f"{part}.txt"
            command = [PY_SPY, "record", "--nonblocking", "--gil", "--subprocesses", "-r", "200"]
            # Past the load's end: on a busy machine py-spy may take seconds to
            # attach to the pool's processes. With --gil an idle process adds
            # no samples.
            command += ["-f", "raw", "-d", str(math.ceil(seconds) + 5), "-p", str(pid)]
            command += ["-o", str(output)]
            samplers[part] = (
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                output,
            )
        time.sleep(1.0)  # py-spy attached
        load = tools.run_load(
            design.base + design.path,
            concurrency=64,
            duration=seconds,
            method="POST",
            headers=headers(design),
            body=BODY,
        )
        tools.run(load)
        for part, (sampler, output) in samplers.items():
            sampler.wait(timeout=seconds + 30)
            counts: collections.Counter = collections.Counter()
            for line in output.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                frame = FRAME.match(stack.rsplit(";", 1)[-1])
                counts[package_of(frame["path"]) if frame else "?"] += int(count)
            spent[part] = counts
    return spent


def report_profile(design: Design, spent: dict[str, collections.Counter]) -> None:
    print(
        f"\nWhere {design.label}'s CPU goes at 64 connections, by package"
        " (py-spy's samples, scaled to the medians above; ms per request):"
    )
    for part, counts in spent.items():
        total = sum(counts.values()) or 1
        per_request = design.cpu_median(part) * 1000
        shares = ", ".join(
            f"{package} {count / total * per_request:.2f}"
            for package, count in counts.most_common(8)
        )
        print(f"  {part} ({per_request:.2f} ms): {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path, required=True)
    parser.add_argument("--previous", type=Path)
    parser.add_argument("--previous-python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200, help="requests at concurrency 1")
    parser.add_argument("--seconds", type=float, default=8.0, help="per run at 64 connections")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then where this render's and the peer's CPU goes (py-spy)",
    )
    parser.add_argument("--worker-options", default="", help="more options of celery worker")
    args = parser.parse_args()
    render = args.render.resolve()
    sys.path.insert(0, str(render / "api"))
    from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, WORKER_NAME, get_settings

    settings = get_settings()
    from benchmarks.http_load import run, run_load
    from benchmarks.servers import cpu_seconds, services_cpu_seconds
    from benchmarks.tasks_roundtrip import sequential
    from testkit import celery_client, delete_queue

    task = f"{WORKER_NAME}.integer_multiplication"
    shared = {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ENVIRONMENT": "test",
        "FIRST_SUPERUSER_EMAIL": SUPERUSER[0],
        "FIRST_SUPERUSER_PASSWORD": SUPERUSER[1],
        "LOGIN_ATTEMPTS_PER_ADDRESS": "10000/minute",
        "C_FORCE_ROOT": "1",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND_URL": settings.CELERY_RESULT_BACKEND_URL,
    }
    queues: list[str] = []

    def render_worker(render: Path, python: str) -> tuple[dict[str, str], int]:
        """A worker of the render, started as its compose file starts it (but
        quieter), on a queue of its own; the environment of the render's API."""
        queue = f"bench.designs.{uuid.uuid4().hex[:8]}"
        queues.append(queue)
        env = {**shared, "CELERY_TASK_QUEUE": queue, "CELERY_LONG_TASK_QUEUE": queue}
        node = f"designs-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [python, "-m", "celery", "--app", "worker.celery_app", "worker"]
        command += [f"--hostname={node}", "--loglevel=WARNING", *shlex.split(args.worker_options)]
        return env, stack.enter_context(process(command, render / "worker", env)).pid

    peer_queue = f"bench.taskiq.{uuid.uuid4().hex[:8]}"
    # Deleted at the end with the render's: the peer's dead letters (taskiq_peer.py).
    queues.append(peer_queue + ".dead_letter")
    peer_env = {
        "PEER_QUEUE": peer_queue,
        "PEER_BROKER_URL": settings.CELERY_BROKER_URL,
        "PEER_REDIS_URL": settings.CELERY_RESULT_BACKEND_URL,
    }
    peer_worker = [sys.executable, "-m", "taskiq", "worker", "taskiq_peer:broker"]
    peer_worker += ["--workers", "1", "--log-level", "WARNING"]
    client = celery_client(
        settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER, QUEUE_TYPE
    )

    tools = Tools(run, run_load, cpu_seconds, services_cpu_seconds)
    with ExitStack() as stack:
        env, worker_pid = render_worker(render, sys.executable)
        designs = [stack.enter_context(api("this render", render, sys.executable, env, worker_pid))]

        def plain_round_trip(queue: str = env["CELERY_TASK_QUEUE"]) -> None:
            result = client.send_task(task, args=[21], queue=queue)
            result.get(timeout=30)
            result.forget()

        original_env = {**env, "ORIGINAL_TASK": task, "ORIGINAL_QUEUE": env["CELERY_TASK_QUEUE"]}
        original_env["ORIGINAL_SERIALIZER"] = TASK_SERIALIZER
        # Its queue as the render declares it: RabbitMQ refuses other arguments.
        queue = client.amqp.queues[env["CELERY_TASK_QUEUE"]]
        original_env["ORIGINAL_QUEUE_ARGUMENTS"] = json.dumps(queue.queue_arguments)
        original_env["ORIGINAL_EXCHANGE_TYPE"] = queue.exchange.type
        if args.previous:
            python = args.previous_python or sys.executable
            previous_env, previous_pid = render_worker(args.previous.resolve(), python)
            previous = api(
                "the previous render", args.previous.resolve(), python, previous_env, previous_pid
            )
            designs.append(stack.enter_context(previous))
        served = uvicorn(sys.executable, "original_design:app", HERE, original_env, "/health")
        base, pid = stack.enter_context(served)
        path = "/tasks/integer-multiplication"
        designs.append(Design(ORIGINAL, base, path, pid, worker_pid))
        peer_pid = stack.enter_context(process(peer_worker, HERE, peer_env)).pid
        base, pid = stack.enter_context(
            uvicorn(sys.executable, "taskiq_peer:app", HERE, peer_env, "/health")
        )
        designs.append(Design(PEER, base, path, pid, peer_pid))
        for design in designs:  # warm up: connections, pools, imports
            measure(design, tools, 10, 1.0)
            design.latency.clear()
            design.rate.clear()
            for spent in design.cpu.values():
                spent.clear()
        sequential(plain_round_trip, 10)
        plain: list[float] = []
        for round_ in range(args.rounds):
            # Each round starts with another design: none always follows the
            # same one (whose load may still be settling in the worker).
            turn = round_ % len(designs)
            for design in designs[turn:] + designs[:turn]:
                measure(design, tools, args.count, args.seconds)
            plain.append(sequential(plain_round_trip, args.count).median)
        report(designs, statistics.median(plain), args, TASK_SERIALIZER)
        if args.profile:
            for design in (designs[0], designs[-1]):
                report_profile(design, profile(design, tools, args.seconds))
    # Once the workers have stopped: a queue deleted under one is a lost connection.
    for queue in queues:
        try:
            delete_queue(client, queue)
        except Exception as error:  # a leftover queue is no reason to lose the figures
            print(f"could not delete the queue {queue}: {error!r}")
    client.close()


def report(designs: list[Design], plain: float, args: argparse.Namespace, serializer: str) -> None:
    print(
        f"Python {sys.version.split()[0]}, {serializer}; {args.rounds} interleaved rounds,"
        f" medians: p50 at 1 connection ({args.count} requests), requests/s at 64"
        f" connections ({args.seconds:g} s) and CPU per answered request there\n"
    )
    for design in designs:
        print(
            f"  {design.label:<46} p50 {statistics.median(design.latency) * 1000:6.2f} ms"
            f"  {statistics.median(design.rate):5.0f} req/s"
            f"  {design.total_cpu() * 1000:5.2f} ms CPU/request"
        )
    print(f"  {'plain blocking Celery client send_task().get()':<46} p50 {plain * 1000:6.2f} ms")
    print("\nCPU per request at 64 connections, ms (the load generator is not in the total):")
    headings = [part.replace("load generator", "load gen.") for part in (*PARTS, "total")]
    print(f"  {'':<46}" + "".join(f"{heading:>11}" for heading in headings))
    for design in designs:
        figures = [design.cpu_median(part) for part in PARTS] + [design.total_cpu()]
        print(f"  {design.label:<46}" + "".join(f"{value * 1000:11.2f}" for value in figures))
    ours, *others = designs
    print()
    for other in others:
        rate = statistics.median(ours.rate) / statistics.median(other.rate)
        latency = statistics.median(ours.latency) / statistics.median(other.latency)
        cpu = ours.total_cpu() / other.total_cpu()
        print(
            f"  this render / {other.label}: {rate:.2f}x requests/s at 64,"
            f" {latency:.2f}x p50 at 1, {cpu:.2f}x CPU per request"
        )
    print(
        f"  this render / the plain blocking Celery client:"
        f" {statistics.median(ours.latency) / plain:.2f}x p50 at 1"
    )
    report_celery_bound(ours, {design.label: design for design in designs})
    rate = {design.label: statistics.median(design.rate) for design in designs}
    checks = [
        ("requests/s at 64 >= 1.0x FastAPI + taskiq's", rate[ours.label] / rate[PEER], ">=", 1.0),
        (
            "requests/s at 64 >= 1.5x the original design's",
            rate[ours.label] / rate[ORIGINAL],
            ">=",
            1.5,
        ),
        ("p50 at 1 <= 1.5x the plain client's", statistics.median(ours.latency) / plain, "<=", 1.5),
    ]
    print("\nTargets:")
    for label, value, sense, bound in checks:
        met = value >= bound if sense == ">=" else value <= bound
        print(f"  {label:<48} {value:5.2f}x  {'met' if met else 'NOT met'}")


def report_celery_bound(ours: Design, by_label: dict[str, Design]) -> None:
    """The most requests/s any FastAPI + Celery design could answer here: the CPU
    this render's run kept busy, shared among Celery's part of a task (its worker,
    RabbitMQ, Redis, as measured), an API as cheap as the peer's (which keeps no
    record and checks no token), and the load generator; no PostgreSQL at all."""
    peer, original = by_label[PEER], by_label[ORIGINAL]
    celery = sum(ours.cpu_median(part) for part in ("worker", "RabbitMQ", "Redis"))
    load_generator = ours.cpu_median("load generator")
    busy = statistics.median(ours.rate) * (ours.total_cpu() + load_generator)
    bound = busy / (celery + peer.cpu_median("API") + load_generator)
    peer_rate, original_rate = statistics.median(peer.rate), statistics.median(original.rate)
    print(
        f"\nCelery's part of a task here: {celery * 1000:.2f} ms of CPU (worker, RabbitMQ, Redis;"
        f" the peer's worker, RabbitMQ and Redis: "
        f"{sum(peer.cpu_median(part) for part in ('worker', 'RabbitMQ', 'Redis')) * 1000:.2f} ms)."
        f"\n  With an API as cheap as the peer's ({peer.cpu_median('API') * 1000:.2f} ms) and no"
        f" PostgreSQL, the {busy:.2f} cores this render kept busy would answer at most"
        f" {bound:.0f} req/s:\n  {bound / peer_rate:.2f}x {PEER}'s, {bound / original_rate:.2f}x"
        " the original design's"
    )


if __name__ == "__main__":
    main()
