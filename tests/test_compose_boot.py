"""The rendered compose stack, booted for real and walked over HTTP (and its
WebSocket) from the host.

`make up` (`up --build --detach`) on a fresh render with a custom worker name,
once with Compose v2 and once with v1.29, on images built locally
(docker_stack.py); then what a user does first, scaling the worker, stopping
each service in the middle of work, `make down`, and `down -v`, which must leave
no container, network or volume behind. The images stay, under a fixed project
name per Compose version, so the next run builds from their cache.

Without a Docker engine this module is skipped with its reason, unless
REQUIRE_DOCKER=1 (CI sets it), which turns the skip into a failure.
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import render
from docker_stack import (
    BOOT_TIMEOUT,
    Stack,
    compose_or_skip,
    provide_python_base,
    stand_in_images,
)
from service_client import answers, free_port, log_in, read_text, request, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

WORKER_NAME = "boot-jobs"
LONG_SERVICES = ("postgres", "rabbitmq", "redis", "api", "worker", "worker-long")
# The Compose versions that boot the stack: both unless BOOT_COMPOSE names fewer
# (GitHub's runners have an engine that Compose v1.29 cannot drive).
BOOT_COMPOSE = os.environ.get("BOOT_COMPOSE", "v2 v1").split()
# The directories of the images' code, in a render.
CODE_DIRECTORIES = (
    *("api", "api/app", "api/asgi", "api/commands", "api/taskengine"),
    *("worker", "worker/worker"),
)


def project_resources(name: str) -> list[str]:
    """Every container, network and volume that carries the compose project's label."""
    label = f"label=com.docker.compose.project={name}"
    found = []
    for kind in (["ps", "--all"], ["network", "ls"], ["volume", "ls"]):
        listed = subprocess.run(
            ["docker", *kind, "--quiet", "--filter", label], capture_output=True, text=True
        )
        found += [f"{kind[0]} {item}" for item in listed.stdout.split()]
    return found


@pytest.fixture(scope="module", params=["v2", "v1"])
def stack(request, tmp_path_factory):
    if request.param not in BOOT_COMPOSE:
        pytest.skip(f"BOOT_COMPOSE={' '.join(BOOT_COMPOSE)} leaves Compose {request.param} out")
    compose = compose_or_skip(request.param, engine=True)
    provide_python_base()
    images = stand_in_images()
    # The service's own stack: the monitoring services' images are not built
    # here yet (their files are checked without an engine, test_monitoring.py).
    project = render(
        tmp_path_factory.mktemp("compose-boot"), worker_name=WORKER_NAME, use_monitoring=False
    )
    # A careless copy of .env next to the code must not reach an image (nor the
    # project's own, at the root of the images' build context).
    for place in CODE_DIRECTORIES:
        shutil.copyfile(project / ".env", project / place / ".env")
    env_file = project / ".env"
    settings = env_file.read_text()
    # Two uvicorn processes, so /metrics must sum them (multiprocess mode); and a
    # waiting request longer than Docker's default stop timeout of 10 s, so the
    # stop tests show the grace periods of compose.yaml.
    settings = settings.replace("API_WORKERS=1", "API_WORKERS=2")
    settings = settings.replace("TASK_WAIT_TIMEOUT=10", "TASK_WAIT_TIMEOUT=18")
    env_file.write_text(settings)
    name = f"cfcboot{request.param}"
    env = {**os.environ, **images, "API_PORT": str(free_port())}
    stack = Stack(compose, project, name, env, f"http://127.0.0.1:{env['API_PORT']}")
    with stack.booted(LONG_SERVICES, 240, "compose stack"):
        yield stack


def test_every_service_is_healthy_and_migrate_ran_once(stack):
    for service in LONG_SERVICES:
        assert stack.states(service) == ["running/healthy"], service
    assert stack.states("migrate") == ["exited/0"]
    email = stack.read_env("FIRST_SUPERUSER_EMAIL")
    assert f"Created superuser {email}" in stack.logs("migrate")


def test_only_the_api_is_published_and_on_loopback(stack):
    published = {}
    for service in (*LONG_SERVICES, "migrate"):
        (container,) = stack.containers(service)
        ports = subprocess.run(["docker", "port", container], capture_output=True, text=True)
        if ports.stdout.strip():
            published[service] = ports.stdout.split()
    assert published == {"api": ["8000/tcp", "->", f"127.0.0.1:{stack.env['API_PORT']}"]}


def image_of(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.Image}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def in_container(container: str, *command: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, *command], capture_output=True, text=True, check=True
    ).stdout


def test_the_services_use_the_generated_credentials(stack):
    """The URLs inside the stack carry .env's generated passwords, and Redis wants one."""
    (api,) = stack.containers("api")
    environment = in_container(api, "env")
    expected = [
        f"CELERY_BROKER_URL=amqp://{stack.read_env('RABBITMQ_DEFAULT_USER')}:"
        f"{stack.read_env('RABBITMQ_DEFAULT_PASS')}@rabbitmq:5672//",
        f"CELERY_RESULT_BACKEND_URL=redis://:{stack.read_env('REDIS_PASSWORD')}@redis:6379/0",
        f"POSTGRES_DATABASE_URL=postgresql+asyncpg://{stack.read_env('POSTGRES_USER')}:"
        f"{stack.read_env('POSTGRES_PASSWORD')}@postgres:5432/{stack.read_env('POSTGRES_DB')}",
    ]
    assert [url for url in expected if url not in environment.splitlines()] == []
    (rabbitmq,) = stack.containers("rabbitmq")
    guest = subprocess.run(
        ["docker", "exec", rabbitmq, "rabbitmqctl", "authenticate_user", "guest", "guest"],
        capture_output=True,
        text=True,
    )
    assert guest.returncode != 0, guest.stdout  # no default guest account in the stack
    (redis,) = stack.containers("redis")
    anonymous = subprocess.run(
        ["docker", "exec", "--env", "REDISCLI_AUTH=", redis, "redis-cli", "get", "x"],
        capture_output=True,
        text=True,
    )
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    (worker,) = stack.containers("worker")
    assert "SECRET_KEY" not in in_container(worker, "env")


def test_no_env_file_or_secret_in_the_images(stack):
    secrets = [
        stack.read_env(name)
        for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_PASS", "REDIS_PASSWORD")
    ]
    for service in ("api", "worker"):
        (container,) = stack.containers(service)
        image = image_of(container)
        find = ["find", "/", "-xdev", "-name", ".env*"]
        found = subprocess.run(
            ["docker", "run", "--rm", "--user", "root", "--entrypoint", find[0], image, *find[1:]],
            capture_output=True,
            text=True,
        )
        assert found.returncode == 0, found.stderr
        assert found.stdout == "", found.stdout
        history = subprocess.run(
            ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
        ).stdout
        config = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
        ).stdout
        assert not [secret for secret in secrets if secret in history + config], service


# What /app holds in each image (both are targets of one Dockerfile, built
# from the project's root) besides the packages that its pyproject.toml ships:
# nothing of the other service's, and no tests.
BESIDE_THE_PACKAGES = {
    "api": {"pyproject.toml", "alembic.ini", "migrations"},
    "worker": {"pyproject.toml", "healthcheck.sh"},
}
TESTS = ("tests", "test_*.py", "conftest.py", "testkit")


def test_each_image_holds_its_own_code_only_and_runs_as_10001(stack):
    for service, beside in BESIDE_THE_PACKAGES.items():
        pyproject = tomllib.loads((stack.project / service / "pyproject.toml").read_text())
        packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        (container,) = stack.containers(service)
        listed = set(in_container(container, "ls", "-A", "/app").split())
        assert listed == {*packages, *beside}, service
        names = " -o ".join(f"-name {name}" for name in TESTS).split()
        assert in_container(container, "find", "/app", *names) == "", service
        assert in_container(container, "id", "-u").strip() == "10001", service


@pytest.fixture(scope="module")
def token(stack):
    return log_in(
        stack.api_url,
        stack.read_env("FIRST_SUPERUSER_EMAIL"),
        stack.read_env("FIRST_SUPERUSER_PASSWORD"),
    )


def test_ready_and_logged_in_as_the_env_superuser(stack, token):
    status, readiness, _ = request("GET", f"{stack.api_url}/api/v1/health/ready")
    assert (status, readiness["status"]) == (200, "ready"), readiness
    status, me, _ = request("GET", f"{stack.api_url}/api/v1/users/me", token=token)
    assert (status, me["email"], me["is_superuser"]) == (
        200,
        stack.read_env("FIRST_SUPERUSER_EMAIL"),
        True,
    )


def test_the_image_serves_the_docs_pages_with_their_assets(stack):
    """The pages' scripts come from a package inside the image, not from a CDN."""
    for page in ("/docs", "/redoc"):
        text = read_text(f"{stack.api_url}{page}")
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', text)
        assert len(assets) >= 2, text
        for asset in assets:
            with urllib.request.urlopen(f"{stack.api_url}{asset}", timeout=5) as response:
                assert len(response.read()) > 1000, asset


def test_make_smoke_passes_against_the_stack(stack):
    """The rendered CI's check of a booted stack: ready, login, one task."""
    output = stack.make("smoke")
    assert "a task ran through a worker and came back: echo 'smoke test'" in output


def test_a_waiting_task_and_a_chord(stack, token):
    url = f"{stack.api_url}/api/v1/tasks/integer-multiplication"
    status, body, _ = request("POST", url, body={"integer": 21}, token=token)
    assert (status, body["status"], body["result"]) == (200, "SUCCESS", 42), body
    url = f"{stack.api_url}/api/v1/workflows/chord"
    status, body, _ = request("POST", url, body={"integer": 3, "size": 4}, token=token)
    assert (status, body["status"], body["result"]) == (200, "SUCCESS", 24), body


def poll_task(stack: Stack, token: str, task_id: str, until: set[str], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = request("GET", f"{stack.api_url}/api/v1/tasks/{task_id}", token=token)
        assert status == 200, body
        if body["status"] in until:
            return body
        time.sleep(0.1)
    pytest.fail(f"task {task_id} never reached {until}; last {body}; the log:\n{stack.logs()}")


def test_an_async_task_polled_to_success(stack, token):
    status, body, headers = request(
        "POST",
        f"{stack.api_url}/api/v1/tasks/integers-sum/async",
        body={"integers": [1, 2, 3, 4]},
        token=token,
    )
    assert status == 202, body
    assert headers["location"] == f"/api/v1/tasks/{body['task_id']}"
    done = poll_task(stack, token, body["task_id"], {"SUCCESS", "FAILURE", "REVOKED"})
    assert (done["status"], done["result"]) == ("SUCCESS", 10)


def follow_over_websocket(stack: Stack, token: str, task_id: str) -> tuple[list[dict], int]:
    """The states the stack's WebSocket sends for the task, and its close code."""
    url = stack.api_url.replace("http://", "ws://") + f"/api/v1/ws/tasks/{task_id}"
    messages = []
    with connect(url, open_timeout=10) as socket:
        socket.send(json.dumps({"token": token}))
        try:
            while True:
                messages.append(json.loads(socket.recv(timeout=30)))
        except ConnectionClosed:
            pass
    return messages, socket.close_code


def test_a_task_followed_over_the_websocket(stack, token):
    status, body, _ = request(
        "POST",
        f"{stack.api_url}/api/v1/tasks/long-running/async",
        body={"seconds": 1, "steps": 4},
        token=token,
    )
    assert status == 202, body
    messages, code = follow_over_websocket(stack, token, body["task_id"])
    assert code == 1000, messages
    assert "PROGRESS" in [message["status"] for message in messages], messages
    assert (messages[-1]["status"], messages[-1]["result"]) == ("SUCCESS", 4)


# A route the image's HEALTHCHECK does not call, so only the test counts there.
COUNTED = 'http_requests_total{method="GET",route="/api/v1/users/me",status="401"}'
# Run in the API container: each process's own count, from its multiprocess files.
COUNTS_PER_PROCESS = """
import glob, os
from prometheus_client.multiprocess import MultiProcessCollector

for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "counter_*.db")):
    total = 0.0
    for metric in MultiProcessCollector.merge([path], accumulate=False):
        for sample in metric.samples:
            labels = sample.labels
            if (sample.name, labels.get("route"), labels.get("status")) == (
                "http_requests_total", "/api/v1/users/me", "401"
            ):
                total += sample.value
    print(total)
"""


def counted_in_total(stack: Stack) -> float:
    text = read_text(f"{stack.api_url}/metrics")
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(COUNTED))


def counted_per_process(stack: Stack) -> list[float]:
    (api,) = stack.containers("api")
    printed = subprocess.run(
        ["docker", "exec", api, "python", "-c", COUNTS_PER_PROCESS],
        capture_output=True,
        text=True,
        check=True,
    )
    return [float(value) for value in printed.stdout.split()]


def test_metrics_sum_both_api_processes(stack):
    sent = 0
    # Concurrent bursts until both processes have counted some (the kernel may
    # hand every connection to one of them for a while).
    deadline = time.monotonic() + 30
    while sum(count > 0 for count in counted_per_process(stack)) < 2:
        assert time.monotonic() < deadline, counted_per_process(stack)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = pool.map(
                lambda _: request("GET", f"{stack.api_url}/api/v1/users/me")[0], range(32)
            )
            assert set(statuses) == {401}
        sent += 32
    # One scrape, answered by one process, counts the requests of both.
    assert counted_in_total(stack) == sent


def tasks_logged_as_succeeded(stack: Stack, container: str) -> int:
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    return (logs.stdout + logs.stderr).count(f"{WORKER_NAME}.integer_multiplication[")


def test_two_workers_share_a_group(stack, token):
    stack.check("up", "--detach", "--no-recreate", "--scale", "worker=2")
    wait_for(lambda: stack.healthy("worker", 2), 120, "two healthy workers", stack.logs)
    workers = stack.containers("worker")
    before = {worker: tasks_logged_as_succeeded(stack, worker) for worker in workers}
    url = f"{stack.api_url}/api/v1/workflows/group"
    status, body, _ = request("POST", url, body={"integer": 5, "size": 24}, token=token)
    assert (status, body["status"], body["result"]) == (200, "SUCCESS", [10] * 24), body
    # RabbitMQ hands the group's messages to both workers' consumers in turn.
    ran = {worker: tasks_logged_as_succeeded(stack, worker) - before[worker] for worker in workers}
    assert all(count > 0 for count in ran.values()), ran
    # Each task is logged when received and when it succeeded.
    assert sum(ran.values()) == 2 * 24


# A file that pip writes when it installs the API's dependencies: its time is
# the same in a rebuilt image that kept the layer of the installed dependencies.
INSTALLED = ["stat", "--format", "%y", "/opt/venv/bin/uvicorn"]


def test_make_up_after_a_code_change_replaces_the_api(stack):
    (before,) = stack.containers("api")
    installed = in_container(before, *INSTALLED)
    worker_images = {image_of(worker) for worker in stack.containers("worker")}
    main = stack.project / "api" / "app" / "main.py"
    main.write_text(main.read_text() + "\n# changed after the first boot\n")
    stack.make("up", timeout=BOOT_TIMEOUT)
    wait_for(lambda: stack.healthy("api"), 120, "the rebuilt API healthy", stack.logs)
    (after,) = stack.containers("api")
    assert after != before
    assert answers(f"{stack.api_url}/api/v1/health")
    assert in_container(after, *INSTALLED) == installed, "the dependencies were installed again"
    # `up` brings the workers back to the one compose.yaml asks for, from the
    # same image: the API's code is in the build context, not in that image.
    wait_for(lambda: stack.healthy("worker"), 120, "one healthy worker", stack.logs)
    assert {image_of(worker) for worker in stack.containers("worker")} == worker_images


# Longer than Docker's default stop timeout (10 s), shorter than the grace periods.
LONG_TASK = {"seconds": 12, "steps": 4}


def test_stopping_the_api_finishes_the_requests_in_flight(stack, token):
    answer = {}

    def wait_on_a_long_task():
        answer["reply"] = request(
            "POST",
            f"{stack.api_url}/api/v1/tasks/long-running",
            body=LONG_TASK,
            token=token,
            timeout=60,
        )

    waiting = threading.Thread(target=wait_on_a_long_task)
    waiting.start()
    time.sleep(1)  # the request is in flight, its task running
    stack.check("stop", "api", timeout=60)
    waiting.join(timeout=30)
    status, body, _ = answer["reply"]
    assert (status, body["status"]) == (200, "SUCCESS"), body
    assert "Finished server process" in stack.logs("api")
    stack.check("start", "api")
    wait_for(lambda: stack.healthy("api"), 60, "the API healthy again", stack.logs)


def test_stopping_the_workers_lets_a_running_task_finish(stack, token):
    status, body, _ = request(
        "POST", f"{stack.api_url}/api/v1/tasks/long-running/async", body=LONG_TASK, token=token
    )
    assert status == 202, body
    poll_task(stack, token, body["task_id"], {"STARTED", "PROGRESS"})
    # Long tasks run on the long tasks' workers.
    stack.check("stop", "worker-long", timeout=150)
    assert "Warm shutdown" in stack.logs("worker-long")
    # The workers are gone; the result was stored before they left.
    done = poll_task(stack, token, body["task_id"], {"SUCCESS", "FAILURE", "REVOKED"}, 5)
    assert done["status"] == "SUCCESS", done


def test_make_down_keeps_the_data_and_down_volumes_leaves_nothing(stack):
    stack.make("down")
    assert sorted(project_resources(stack.name)) == [
        f"volume {stack.name}_postgres-data",
        f"volume {stack.name}_rabbitmq-data",
        f"volume {stack.name}_redis-data",
    ]
    stack.check("down", "--volumes", "--remove-orphans")
    assert project_resources(stack.name) == []
