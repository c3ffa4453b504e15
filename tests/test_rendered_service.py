"""The rendered service's own commands, run against the real services.

One virtual environment serves every render (RENDERED_VENV, or .cache/ in the
template checkout), so only the first `make install` downloads anything.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import TEMPLATE, choice_variables, render
from service_client import answers, free_port, log_in, read_text, request, wait_for

SHARED_VENV = Path(os.environ.get("RENDERED_VENV", TEMPLATE / ".cache" / "rendered-venv"))
# What the rendered tests leave to look at (the live page's screenshot), by render.
ARTIFACTS = TEMPLATE / ".cache" / "artifacts"
SERVICES = {
    "PostgreSQL": ("127.0.0.1", 5432),
    "RabbitMQ": ("127.0.0.1", 5672),
    "Redis": ("127.0.0.1", 6379),
}
# Prints how many databases have the name in argv[1]; drops it after "drop".
DATABASE_COUNT = """
import asyncio, sys
import asyncpg

async def main(name, drop):
    connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        query = "SELECT count(*) FROM pg_database WHERE datname = $1"
        print(await connection.fetchval(query, name))
        if drop:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()

asyncio.run(main(sys.argv[1], sys.argv[2:] == ["drop"]))
"""
SEND_TASK = """
import sys
from worker.celery_app import celery_app
from worker.config import WORKER_NAME

result = celery_app.send_task(f"{WORKER_NAME}.echo", args=[sys.argv[1]])
print(result.get(timeout=20))
result.forget()
"""
# Run in api/: the rendered test support removes the queue and its exchange.
DELETE_QUEUE = """
import sys
from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, get_settings
from testkit import celery_client, delete_queue

settings = get_settings()
client = celery_client(
    settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER, QUEUE_TYPE
)
delete_queue(client, sys.argv[1])
"""
# What a copy of a render leaves behind: the caches its tools made.
CACHES = (".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "test-artifacts")
# Every test here uses the shared environment: keep them on one xdist worker.
pytestmark = [pytest.mark.service, pytest.mark.xdist_group("rendered-service")]


def make(project: Path, *targets: str, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", *targets, f"VENV={SHARED_VENV}"],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"make {' '.join(targets)}:\n{result.stdout}\n{result.stderr}"
    return result


def venv_python(project: Path, code: str, *args: str, **env: str) -> str:
    """Run a snippet with the rendered service's environment and packages."""
    result = subprocess.run(
        [str(SHARED_VENV / "bin" / "python"), "-c", code, *args],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@contextmanager
def running(project: Path, target: str, log: Path, **env: str):
    """`make TARGET` in the background; the whole process group stops at the end."""
    with log.open("w") as output:
        process = subprocess.Popen(
            ["make", target, f"VENV={SHARED_VENV}"],
            cwd=project,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session", autouse=True)
def services_answer():
    missing = []
    for name, address in SERVICES.items():
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError as error:
            missing.append(f"{name} at {address[0]}:{address[1]} ({error})")
    if missing:
        pytest.fail("the rendered service needs running services: " + "; ".join(missing))


@pytest.fixture(scope="module", params=["json", "pickle"])
def serializer(request):
    return request.param


@pytest.fixture(scope="module")
def project(serializer, tmp_path_factory):
    """A rendered project, installed into the shared environment."""
    path = render(tmp_path_factory.mktemp(f"rendered-{serializer}"), task_serializer=serializer)
    make(path, "install")
    return path


# The pages the rendered suite drives in chromium, as it saves them.
SCREENSHOTS = ("live-page.png", "docs.png", "docs-users-me.png", "redoc.png")


def test_make_test_passes_against_the_real_services(project, serializer):
    # The pages' screenshots land where the template's run reports them.
    screenshots = [ARTIFACTS / serializer / name for name in SCREENSHOTS]
    for screenshot in screenshots:
        screenshot.unlink(missing_ok=True)
    result = make(project, "test", TEST_ARTIFACTS=str(screenshots[0].parent))
    # One pytest summary for the worker, one for the API.
    assert result.stdout.count(" passed") == 2, result.stdout
    if os.environ.get("REQUIRE_BROWSER") == "1":
        for screenshot in screenshots:
            assert screenshot.read_bytes().startswith(b"\x89PNG"), f"no {screenshot.name}"


def test_make_bench_load_brings_every_task_back(project, serializer):
    """The two load runs `make test` leaves out, shortened to 2,000 tasks each
    (10,000 take minutes per run): every task right."""
    result = make(project, "bench-load", LOAD_TASKS="2000")
    assert "2 passed" in result.stdout, result.stdout
    assert result.stdout.count("correct 2000,") == 2, result.stdout


def test_with_every_switch_off_make_lint_and_make_test_pass(tmp_path_factory):
    """The other value of each switch (the default renders have them all on),
    and classic queues: no examples either, so the worker has only the echo task."""
    switches_off = {name: False for name in choice_variables() if name.startswith("use_")}
    assert set(switches_off) == {
        "use_examples",
        "use_websockets",
        "use_monitoring",
        "use_github_actions",
        "use_kubernetes",
    }
    path = render(tmp_path_factory.mktemp("rendered-plain"), queue_type="classic", **switches_off)
    make(path, "install")
    make(path, "lint")
    result = make(path, "test")
    assert result.stdout.count(" passed") == 2, result.stdout
    assert "test_task_socket" not in result.stdout


def test_classic_queues_with_pickle_pass_the_tests_of_the_worker_and_the_engine(tmp_path):
    """The one pair of answers the full runs above leave out: pickle with
    classic queues, through every test the queue type changes."""
    path = render(tmp_path / "render", task_serializer="pickle", queue_type="classic")
    pytest_bin = str(SHARED_VENV / "bin" / "pytest")
    for directory, arguments in (("worker", []), ("api", ["tests/engine"])):
        result = subprocess.run(
            [pytest_bin, "-q", *arguments],
            cwd=path / directory,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{directory}:\n{result.stdout}\n{result.stderr}"
        assert re.search(r"\d+ passed", result.stdout), result.stdout


def test_make_lint_is_clean_even_with_a_new_migration(project):
    make(project, "lint")
    versions = project / "api" / "migrations" / "versions"
    before = set(versions.iterdir())
    subprocess.run(
        [str(SHARED_VENV / "bin" / "alembic"), "revision", "-m", "add a column"],
        cwd=project / "api",
        check=True,
        capture_output=True,
    )
    (revision,) = set(versions.iterdir()) - before
    try:
        make(project, "lint")
    finally:
        revision.unlink()


def test_pre_commit_runs_the_checks_of_make_lint(project, serializer, tmp_path):
    """The render's git hooks pass on the fresh code and stop a bad commit, with
    the ruff and mypy of the project's environment (no hook repository cloned)."""
    if serializer != "json":
        pytest.skip("the hooks do not depend on the serializer")
    repository = tmp_path / "repository"
    shutil.copytree(project, repository, ignore=shutil.ignore_patterns(*CACHES))
    env = {**os.environ, "VENV": str(SHARED_VENV), "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    pre_commit = [str(SHARED_VENV / "bin" / "pre-commit"), "run", "--all-files"]

    def hooks() -> subprocess.CompletedProcess:
        subprocess.run(["git", "add", "--all"], cwd=repository, check=True)
        return subprocess.run(pre_commit, cwd=repository, env=env, capture_output=True, text=True)

    subprocess.run(["git", "init", "--quiet"], cwd=repository, check=True)
    clean = hooks()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.search(r"ruff \(make ruff\)\.+Passed", clean.stdout), clean.stdout
    assert re.search(r"mypy \(make mypy\)\.+Passed", clean.stdout), clean.stdout

    (repository / "api" / "app" / "careless.py").write_text("import os\ncount: int = 'one'\n")
    careless = hooks()
    assert careless.returncode == 1, careless.stdout
    assert re.search(r"ruff \(make ruff\)\.+Failed", careless.stdout), careless.stdout
    assert re.search(r"mypy \(make mypy\)\.+Failed", careless.stdout), careless.stdout
    assert "careless.py" in careless.stdout


def test_make_migrate_then_make_api_serves_both_parts(project, serializer, tmp_path):
    database = f"migrate_check_{uuid.uuid4().hex[:10]}"
    queue = f"test.render.{uuid.uuid4().hex[:10]}"
    env = {
        "POSTGRES_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "FIRST_SUPERUSER_EMAIL": "boss@example.com",
        "FIRST_SUPERUSER_PASSWORD": "a long enough password",
        "API_PORT": str(free_port()),
        "CELERY_TASK_QUEUE": queue,
    }
    if serializer == "pickle" and os.geteuid() == 0:
        env["C_FORCE_ROOT"] = "1"  # Celery refuses pickle as root otherwise
    base = f"http://127.0.0.1:{env['API_PORT']}"
    log = tmp_path / "api.log"
    try:
        assert venv_python(project, DATABASE_COUNT, database).strip() == "0"
        first = make(project, "migrate", **env)
        assert f"Created database '{database}'" in first.stdout
        assert "Created superuser boss@example.com" in first.stdout
        again = make(project, "migrate", **env)
        assert "Created" not in again.stdout

        with running(project, "api", log, **env):
            wait_for(
                lambda: answers(f"{base}/api/v1/health"),
                30,
                "make api did not answer",
                log.read_text,
            )
            status, readiness, _ = request("GET", f"{base}/api/v1/health/ready")
            assert (status, readiness["status"]) == (200, "ready")
            assert request("GET", f"{base}/api/v1/users/me")[0] == 401
            token = log_in(base, "boss@example.com", "a long enough password")
            status, me, _ = request("GET", f"{base}/api/v1/users/me", token=token)
            assert (status, me["email"], me["is_superuser"]) == (200, "boss@example.com", True)
            assert 'route="/api/v1/users/me"' in read_text(f"{base}/metrics")

            # CI's check of a running stack works against `make api` and `make worker` too.
            with running(project, "worker", tmp_path / "worker.log", **env):
                smoke = make(project, "smoke", **env)
            assert "a task ran through a worker and came back" in smoke.stdout
    finally:
        venv_python(project, DATABASE_COUNT, database, "drop")
        venv_python(project / "api", DELETE_QUEUE, queue)


def test_make_worker_consumes_the_worker_queue(project, serializer, tmp_path):
    queue = f"test.render.{uuid.uuid4().hex[:10]}"
    log = tmp_path / "worker.log"
    env = {"CELERY_TASK_QUEUE": queue}
    if serializer == "pickle" and os.geteuid() == 0:
        env["C_FORCE_ROOT"] = "1"  # Celery refuses pickle as root otherwise
    try:
        with running(project, "worker", log, **env):
            wait_for(
                lambda: " ready." in log.read_text(), 60, "make worker was not ready", log.read_text
            )
            echoed = venv_python(project / "worker", SEND_TASK, "ping", CELERY_TASK_QUEUE=queue)
            assert echoed.strip() == "ping"
        text = log.read_text()
        assert f".> {queue}" in text  # the banner lists the consumed queue
        assert "my-service-worker@" in text
    finally:
        venv_python(project / "api", DELETE_QUEUE, queue)


def test_metrics_benchmark_runs_and_prints_its_numbers(project):
    result = subprocess.run(
        [
            str(SHARED_VENV / "bin" / "python"),
            "-m",
            "benchmarks.metrics_overhead",
            "--rounds",
            "1",
            "--seconds",
            "0.3",
            "--concurrency",
            "4",
        ],
        cwd=project / "api",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio with/without:" in result.stdout
    assert "load generator CPU:" in result.stdout


def settled(read: Callable[[], float]) -> float:
    """The value once two reads a quarter second apart agree."""
    previous = read()
    for _ in range(20):
        time.sleep(0.25)
        current = read()
        if current == previous:
            return current
        previous = current
    return previous


def health_requests_counted(base: str) -> float:
    text = read_text(f"{base}/metrics")
    series = 'http_requests_total{method="GET",route="/api/v1/health",status="200"}'
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(series))


def test_metrics_add_up_across_uvicorn_workers(project, tmp_path):
    """Multiprocess mode, as the rendered README documents it."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "uvicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                str(SHARED_VENV / "bin" / "uvicorn"),
                "app.main:app",
                "--workers",
                "2",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=project / "api",
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: answers(f"{base}/api/v1/health"), 30, "uvicorn did not answer", log.read_text
        )
        # Counted just after its answer is sent: wait until the last one is in.
        before = settled(lambda: health_requests_counted(base))
        sent = 0
        # Concurrent bursts until both workers have counted requests (the kernel
        # may hand every connection to one of them for a while).
        deadline = time.monotonic() + 30
        while len(list(metrics_dir.glob("counter_*.db"))) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=8) as pool:
                assert all(pool.map(lambda _: answers(f"{base}/api/v1/health"), range(32)))
            sent += 32
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
        # One scrape, answered by one worker, counts the requests of both.
        assert settled(lambda: health_requests_counted(base)) - before == sent
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_login_flood_benchmark_runs_and_checks_its_targets(project, serializer):
    if serializer != "json":
        pytest.skip("one short run is enough to keep the script working")
    result = subprocess.run(
        [str(SHARED_VENV / "bin" / "python"), "-m", "benchmarks.login_flood", "--logins", "20"],
        cwd=project / "api",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("20 logins answered") == 2, result.stdout
    assert len(re.findall(r"\((met|NOT met): ", result.stdout)) == 4, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_socket_benchmark_runs_and_checks_its_targets(project, serializer):
    if serializer != "json":
        pytest.skip("one short run is enough to keep the script working")
    result = subprocess.run(
        [
            str(SHARED_VENV / "bin" / "python"),
            *("-m", "benchmarks.socket_events", "--events", "20", "--sockets", "50"),
        ],
        cwd=project / "api",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over the WebSocket:" in result.stdout
    assert "final states delivered:           50 of 50" in result.stdout
    verdicts = re.findall(r"^  .+  (met|NOT met)$", result.stdout, re.MULTILINE)
    assert len(verdicts) == 3, result.stdout


def test_task_benchmark_runs_and_checks_its_targets(project, serializer):
    if serializer != "json":
        pytest.skip("one short run is enough to keep the script working")
    result = subprocess.run(
        [
            str(SHARED_VENV / "bin" / "python"),
            "-m",
            "benchmarks.tasks_roundtrip",
            "--count",
            "20",
            "--seconds",
            "1",
            "--batch",
            "50",
        ],
        cwd=project / "api",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "(a) plain Celery client",
        "(b) API waiting endpoint",
        "GET /api/v1/users/me, 64 connections",
    ):
        assert line in result.stdout
    # What (b) waits for besides its task, store by store, and (b) without it.
    assert re.search(r"lease \d+\.\d\d ms, record \d+\.\d\d ms, end \d+\.\d\d ms", result.stdout)
    assert re.search(r"\(b\) less those stores: +\d+\.\d\d ms, \d+\.\d\dx \(a\)", result.stdout)
    # Each of the six targets ends its line with its verdict.
    verdicts = re.findall(r"^  .+ \d+\.\d\d  (met|NOT met)$", result.stdout, re.MULTILINE)
    assert len(verdicts) == 6, result.stdout


def test_make_test_oldest_runs_the_engines_tests_on_the_floors_of_celery_and_kombu(
    project, serializer
):
    """The engine relies on how Celery builds messages: its tests pass with the
    oldest Celery and kombu that api/pyproject.toml admits, as `make test` shows
    they do with the newest."""
    if serializer != "json":
        pytest.skip("one run with the oldest releases is enough")
    oldest = TEMPLATE / ".cache" / "oldest-venv"
    result = make(project, "test-oldest", OLDEST_VENV=str(oldest))
    pins = subprocess.run(
        [sys.executable, "scripts/floors.py", "api/pyproject.toml", "celery", "kombu"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    versions = {pin.split("==")[0]: pin.split("==")[1] for pin in pins}
    assert f"celery {versions['celery']} kombu {versions['kombu']}" in result.stdout
    assert re.search(r"\d+ passed", result.stdout), result.stdout
    assert " failed" not in result.stdout, result.stdout


def test_the_comparison_of_designs_runs_and_prints_its_ratios(project, serializer):
    """The template's own benchmark (benchmarks/compare_designs.py, `make bench`),
    short: the render's API, the design it replaces, the taskiq peer and the
    plain client in one run, the CPU of every process, the targets, the profile."""
    if serializer != "json":
        pytest.skip("one short run is enough to keep the script working")
    python = str(SHARED_VENV / "bin" / "python")
    requirements = str(TEMPLATE / "benchmarks" / "requirements.txt")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-r", requirements], check=True)
    result = subprocess.run(
        [
            *(python, "benchmarks/compare_designs.py", "--render", str(project)),
            *("--rounds", "1", "--count", "5", "--seconds", "1", "--profile"),
        ],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for design in ("the original design (sync_to_async + polling)", "FastAPI + taskiq"):
        assert re.search(rf"this render / {re.escape(design)}: \d+\.\d\dx requests/s", output)
        # Its CPU per request, process by process: API, worker, the three services, total.
        assert re.search(rf"{re.escape(design)}\s+(\d+\.\d\d\s+){{6}}\d+\.\d\d\n", output)
    assert re.search(r"plain blocking Celery client .* p50 +\d+\.\d\d ms", output)
    assert len(re.findall(r"  .{40,50} \d+\.\d\dx  (met|NOT met)", output)) == 3, output
    # The most any FastAPI + Celery design could answer on the CPU this run used.
    assert re.search(r"would answer at most \d+ req/s:\n  \d+\.\d\dx FastAPI \+ taskiq's", output)
    # Where the API's and the worker's CPU goes, for this render and the peer.
    assert len(re.findall(r"^  (API|worker) \(\d+\.\d\d ms\): \w", output, re.MULTILINE)) == 4


def docs_steps(page: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The code changes of a docs page's steps, as (path, old, new) with old
    empty for an addition at the end of the file, and its shell blocks."""
    changes, shells, path, replaced = [], [], None, None
    blocks = re.split(r"^```(\w*)\n(.*?)^```\n", page, flags=re.MULTILINE | re.DOTALL)
    for index in range(0, len(blocks) - 1, 3):
        prose, language, code = blocks[index], blocks[index + 1], blocks[index + 2]
        named = re.findall(r"`([\w/.]+\.py)`", prose)
        path = named[-1] if named else path
        if language == "sh":
            shells.append(code)
        elif re.search(r"replace the line\s*$", prose):
            replaced = code
        elif replaced is not None:
            changes.append((path, replaced, code))
            replaced = None
        elif re.search(r"(?i)at the end of", prose):
            changes.append((path, "", code))
    return changes, shells


def json_objects(text: str) -> list[dict]:
    """Every JSON object in the text, in order (curl prints no newline after one)."""
    decoder, found, index = json.JSONDecoder(), [], text.find("{")
    while index != -1:
        value, end = decoder.raw_decode(text, index)
        found.append(value)
        index = text.find("{", end)
    return found


def test_adding_a_task_as_the_docs_say(tmp_path):
    """docs/tasks.md, "Add a task", followed literally on a fresh render: its
    code goes where it says, lint and its test pass, and its commands get the
    answers it promises, over the waiting route, /async and the WebSocket."""
    project = render(tmp_path / "render")
    page = (project / "docs" / "tasks.md").read_text()
    section = page.split("## Add a task", 1)[1].split("\n## ", 1)[0]
    changes, shells = docs_steps(section)
    assert [path for path, *_ in changes] == [
        "worker/worker/tasks.py",
        "api/app/schemas/task.py",
        "api/app/api/v1/private/tasks.py",
        "api/app/api/v1/private/tasks.py",
        "api/tests/test_tasks.py",
    ], changes
    for path, old, new in changes:
        target = project / path
        text = target.read_text()
        if old:
            assert text.count(old) == 1, (path, old)
            target.write_text(text.replace(old, new))
        else:
            target.write_text(text.rstrip("\n") + "\n\n\n" + new)
    make(project, "lint")
    (test_name,) = re.findall(r"^async def (test_\w+)", changes[-1][2], re.MULTILINE)
    pytest = [str(SHARED_VENV / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"]
    tested = subprocess.run(
        [*pytest, f"tests/test_tasks.py::{test_name}"],
        cwd=project / "api",
        capture_output=True,
        text=True,
    )
    assert "1 passed" in tested.stdout, tested.stdout + tested.stderr

    database = f"docs_steps_{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {
        "POSTGRES_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "API_PORT": str(port),
        "CELERY_TASK_QUEUE": f"test.docs.{uuid.uuid4().hex[:10]}",
    }
    try:
        make(project, "migrate", **env)
        with (
            running(project, "worker", tmp_path / "worker.log", **env),
            running(project, "api", tmp_path / "api.log", **env),
        ):
            base = f"http://127.0.0.1:{port}"
            api_log = (tmp_path / "api.log").read_text
            wait_for(
                lambda: answers(f"{base}/api/v1/health"), 30, "make api did not answer", api_log
            )
            script = "\n".join(shells).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            script = script.replace(".venv/bin/python", str(SHARED_VENV / "bin" / "python"))
            ran = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=project,
                capture_output=True,
                text=True,
                timeout=60,
            )
    finally:
        venv_python(project, DATABASE_COUNT, database, "drop")
        venv_python(project / "api", DELETE_QUEUE, env["CELERY_TASK_QUEUE"])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    answers_seen = json_objects(ran.stdout)
    # The waiting route, GET after /async (or PENDING: the docs say ask again),
    # and the WebSocket's states, the final one last.
    assert answers_seen[0]["result"] == "olleh", ran.stdout
    assert answers_seen[1]["status"] in ("SUCCESS", "PENDING"), ran.stdout
    assert answers_seen[-1] == {**answers_seen[-1], "status": "SUCCESS", "result": "olleh"}
