"""CI at both levels: the template's workflows and every rendered one.

actionlint (with shellcheck where it is installed) checks the workflow files;
the tests below check what actionlint cannot know: that the rendered workflow
calls make targets that exist, and that its service containers are the ones
the tests' settings point at.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.parse
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import TEMPLATE, all_combinations, combination_id

ACTIONLINT = Path(sys.prefix) / "bin" / "actionlint"
# The Kubernetes switch changes no workflow (test_answers.py shows it adds or
# removes only its own files), so one of its values is enough here.
WITH_ACTIONS = all_combinations(use_github_actions=True, use_kubernetes=True)
TEMPLATE_WORKFLOWS = sorted((TEMPLATE / ".github" / "workflows").glob("*.yml"))
# `make` and the targets it is given, in a step's shell script.
MAKE_CALL = re.compile(r"(?:^|[;&|]\s*|\bsudo\s+(?:\w+=\S+\s+)*)make\s+([^;&|\n]*)", re.MULTILINE)
# A GitHub Actions expression, which may hold spaces: ${{ matrix.python-version }}.
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
MAKEFILE_RULE = re.compile(r"^([A-Za-z0-9_./-]+):(?!=)", re.MULTILINE)
# What a step must leave to a make target rather than spell out again; and the
# commands that only prepare the runner (system packages, an environment file).
TOOL_COMMANDS = re.compile(r"\b(pytest|ruff|mypy|pip|alembic|celery|uvicorn|compose|docker)\b")
PREPARATION = re.compile(r"^(sudo\s+)?(apt-get|chmod|printf|echo)\b")
# The compose service whose default image each service container must use.
COMPOSE_IMAGE = re.compile(r"image: \$\{\w+:-([^}]+)\}")


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck") or ""  # empty turns the shell checks off
    return subprocess.run(
        [str(ACTIONLINT), f"-shellcheck={shellcheck}", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def workflow(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    return {
        ("on" if key is True else key): value
        for key, value in yaml.safe_load(path.read_text()).items()
    }


def make_targets(makefile: Path) -> set[str]:
    return set(MAKEFILE_RULE.findall(makefile.read_text()))


def run_steps(document: dict) -> list[str]:
    return [
        step["run"] for job in document["jobs"].values() for step in job["steps"] if "run" in step
    ]


def called_targets(script: str) -> list[str]:
    """The make targets a step's script calls (variable assignments left out)."""
    script = EXPRESSION.sub("expression", script)
    return [
        word
        for arguments in MAKE_CALL.findall(script)
        for word in arguments.split()
        if "=" not in word and not word.startswith("-")
    ]


def test_template_workflows_pass_actionlint():
    assert TEMPLATE_WORKFLOWS, "the template has no workflow"
    result = actionlint(*TEMPLATE_WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v7\n        with:\n          fetch-deep: 0\n"
        "      - run: echo ${{ github.event.head_commit.message }}\n"
        "      - run: cd $HOME\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'input "fetch-deep" is not defined' in result.stdout
    assert "potentially untrusted" in result.stdout
    if shutil.which("shellcheck"):
        assert "SC2086" in result.stdout  # $HOME unquoted


@pytest.mark.parametrize("combination", WITH_ACTIONS, ids=combination_id)
def test_rendered_workflow_passes_actionlint_and_calls_existing_targets(bake, combination):
    project = bake(**combination)
    (path,) = (project / ".github" / "workflows").glob("*.yml")
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr

    targets = make_targets(project / "Makefile")
    scripts = run_steps(workflow(path))
    called = [target for script in scripts for target in called_targets(script)]
    assert {"install", "lint", "test", "env", "up", "smoke", "logs"} <= set(called)
    assert [target for target in called if target not in targets] == []
    # The steps that are not make calls only prepare the runner.
    assert spelled_out(scripts) == []
    # Every render has pages to test in a browser: the runner's Chrome must be
    # driven by its own chromedriver (there is none at the default path).
    jobs = workflow(path)["jobs"].values()
    assert [job["env"]["CHROMIUM"] for job in jobs if "REQUIRE_BROWSER" in job.get("env", {})]
    assert any("CHROMEDRIVER=$CHROMEWEBDRIVER/chromedriver" in script for script in scripts)


def spelled_out(scripts: list[str]) -> list[str]:
    """The commands of these scripts that run a tool themselves instead of
    through a make target."""
    commands = [
        command.strip()
        for script in scripts
        for command in re.split(r"\n|&&|\|\||;", script)
        if command.strip()
    ]
    return [
        command
        for command in commands
        if not called_targets(command)
        and not PREPARATION.match(command)
        and TOOL_COMMANDS.search(command)
    ]


def test_a_command_spelled_out_beside_make_is_caught():
    scripts = ["make install && .venv/bin/pytest -x", "sudo apt-get install docker-compose"]
    assert spelled_out(scripts) == [".venv/bin/pytest -x"]


# What Dependabot reads in a directory, by ecosystem.
MANIFESTS = {"pip": "pyproject.toml", "docker": "Dockerfile", "github-actions": ".github/workflows"}


def declares_dependencies(manifest: Path) -> bool:
    """Whether Dependabot has anything to read in the file: a pyproject.toml
    that only configures tools (the render's root one) has no [project]."""
    return manifest.name != "pyproject.toml" or "project" in tomllib.loads(manifest.read_text())


def dependabot_problems(root: Path) -> list[str]:
    """Where .github/dependabot.yml watches a directory without what its
    ecosystem reads, or leaves a manifest of the project unwatched."""
    updates = yaml.safe_load((root / ".github" / "dependabot.yml").read_text())["updates"]
    watched = {
        (update["package-ecosystem"], directory.strip("/"))
        for update in updates
        for directory in update.get("directories", [update.get("directory")])
    }
    problems = [
        f"{ecosystem} watches /{directory}, which has no {MANIFESTS[ecosystem]}"
        for ecosystem, directory in sorted(watched)
        if not (root / directory / MANIFESTS[ecosystem]).exists()
    ]
    for ecosystem in ("pip", "docker"):
        for path in root.rglob(MANIFESTS[ecosystem]):
            directory = path.parent.relative_to(root).as_posix().removeprefix(".")
            if ".venv" in path.parts or not declares_dependencies(path):
                continue
            if (ecosystem, directory) not in watched:
                problems.append(f"no {ecosystem} update watches {path.relative_to(root)}")
    if ("github-actions", "") not in watched:
        problems.append("no github-actions update watches .github/workflows")
    return problems


@pytest.mark.parametrize("combination", WITH_ACTIONS, ids=combination_id)
def test_dependabot_watches_every_manifest_of_the_render(bake, combination):
    assert dependabot_problems(bake(**combination)) == []


def test_dependabot_watches_the_templates_own_manifests():
    assert {"github-actions", "pip"} == {
        update["package-ecosystem"]
        for update in yaml.safe_load((TEMPLATE / ".github/dependabot.yml").read_text())["updates"]
    }


def test_an_unwatched_dockerfile_is_caught(bake):
    project = bake()
    (project / "tools").mkdir()
    (project / "tools" / "Dockerfile").write_text("FROM debian:trixie\n")
    assert dependabot_problems(project) == ["no docker update watches tools/Dockerfile"]


def test_a_pyproject_with_a_project_is_a_manifest_and_one_of_tools_only_is_not(bake):
    project = bake()
    assert "project" not in tomllib.loads((project / "pyproject.toml").read_text())
    (project / "tools").mkdir()
    (project / "tools" / "pyproject.toml").write_text('[project]\nname = "tools"\n')
    assert dependabot_problems(project) == ["no pip update watches tools/pyproject.toml"]


def test_make_calls_are_found_in_a_script():
    script = (
        "make install\nsudo REQUIRE_DOCKER=1 make test-boot\nmake logs LOGS_FOLLOW=\necho make\n"
        "make test-render V=${{ matrix.version }}"
    )
    assert called_targets(script) == ["install", "test-boot", "logs", "test-render"]


def test_template_workflows_call_existing_targets():
    targets = make_targets(TEMPLATE / "Makefile")
    called = [
        target
        for path in TEMPLATE_WORKFLOWS
        for script in run_steps(workflow(path))
        for target in called_targets(script)
    ]
    assert {"lint", "test-render", "test-service", "test-boot"} <= set(called)
    assert [target for target in called if target not in targets] == []
    scripts = [script for path in TEMPLATE_WORKFLOWS for script in run_steps(workflow(path))]
    assert spelled_out(scripts) == []


def test_the_suites_parts_cover_it_whole():
    """`test-render`, `test-service` and `test-boot` together run every test once."""

    def collected(*mark: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", *mark],
            cwd=TEMPLATE,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return {line for line in result.stdout.splitlines() if "::" in line}

    parts = [collected("-m", m) for m in ("not service and not boot", "service", "boot")]
    assert all(parts)
    assert set.union(*parts) == collected()
    assert sum(map(len, parts)) == len(collected())


def services_and_settings(document: dict) -> tuple[dict, dict]:
    (job,) = [job for job in document["jobs"].values() if "services" in job]
    return job["services"], job["env"]


def compose_images(project: Path) -> dict[str, str]:
    text = (project / "compose.yaml").read_text()
    services = yaml.safe_load(text)["services"]
    return {
        name: COMPOSE_IMAGE.match(f"image: {service['image']}").group(1)
        for name, service in services.items()
        if "image" in service
    }


def published(service: dict, port: int) -> bool:
    return f"{port}:{port}" in service["ports"]


def health_checked(service: dict) -> bool:
    return "--health-cmd" in service["options"]


def container_problems(project: Path) -> list[str]:
    """Where the rendered workflow's service containers and the settings that
    point the tests at them disagree, or differ from compose.yaml's images."""
    services, settings = services_and_settings(workflow(project / ".github/workflows/ci.yml"))
    problems = []
    if set(services) != {"postgres", "rabbitmq", "redis"}:
        problems.append(f"service containers {sorted(services)}")
    images = compose_images(project)
    problems += [
        f"{name} runs {service['image']}, compose.yaml {images.get(name)}"
        for name, service in services.items()
        if service["image"] != images.get(name)
    ]
    problems += [
        f"{name} has no health check" for name, s in services.items() if not health_checked(s)
    ]
    documented = (project / ".env.example").read_text()
    problems += [
        f"{name} is no setting"
        for name in settings
        if name.endswith("_URL") and f"\n{name}=" not in documented
    ]

    postgres_env = services["postgres"].get("env", {})
    postgres = urlsplit(settings["POSTGRES_DATABASE_URL"].replace("+asyncpg", ""))
    if postgres.hostname != "127.0.0.1" or not published(services["postgres"], postgres.port):
        problems.append(f"PostgreSQL is not published where the URL points: {postgres.netloc}")
    if postgres.username != postgres_env.get("POSTGRES_USER", "postgres"):
        problems.append("the PostgreSQL user differs from the URL's")
    if postgres.password != postgres_env.get("POSTGRES_PASSWORD"):
        problems.append("the PostgreSQL password differs from the URL's")

    rabbitmq_env = services["rabbitmq"].get("env", {})
    broker = urlsplit(settings["CELERY_BROKER_URL"])
    if broker.hostname != "127.0.0.1" or not published(services["rabbitmq"], broker.port):
        problems.append(f"RabbitMQ is not published where the URL points: {broker.netloc}")
    account = (rabbitmq_env.get("RABBITMQ_DEFAULT_USER"), rabbitmq_env.get("RABBITMQ_DEFAULT_PASS"))
    if (broker.username, broker.password) != account:
        problems.append("the RabbitMQ account differs from the URL's")

    results = urlsplit(settings["CELERY_RESULT_BACKEND_URL"])
    if results.hostname != "127.0.0.1" or not published(services["redis"], results.port):
        problems.append(f"Redis is not published where the URL points: {results.netloc}")
    if results.password is not None:
        problems.append("the Redis URL has a password the container does not ask for")
    return problems


def test_rendered_service_containers_are_what_the_tests_expect(bake):
    project = bake(worker_name="billing-jobs", project_slug="billing")
    assert container_problems(project) == []
    settings = services_and_settings(workflow(project / ".github/workflows/ci.yml"))[1]
    assert urlsplit(settings["POSTGRES_DATABASE_URL"]).path == "/billing"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("POSTGRES_PASSWORD: ci-postgres", "POSTGRES_PASSWORD: other"), "PostgreSQL password"),
        (("RABBITMQ_DEFAULT_USER: ci", "RABBITMQ_DEFAULT_USER: admin"), "RabbitMQ account"),
        (("- 6379:6379", "- 6380:6379"), "Redis is not published"),
        (("image: postgres:17-bookworm", "image: postgres:16"), "postgres runs postgres:16"),
        (('--health-cmd "redis-cli ping"', ""), "redis has no health check"),
    ],
)
def test_a_drifted_service_container_is_caught(bake, change, problem):
    project = bake()
    path = project / ".github/workflows/ci.yml"
    text = path.read_text()
    assert change[0] in text
    path.write_text(text.replace(*change))
    assert [found for found in container_problems(project) if problem in found] != []


def test_the_template_suites_service_containers_are_what_it_expects(bake):
    """The template suite assumes a developer's services: trust, guest, default ports."""
    (path,) = [path for path in TEMPLATE_WORKFLOWS if "services" in path.read_text()]
    services, _ = services_and_settings(workflow(path))
    images = compose_images(bake())
    assert {name: service["image"] for name, service in services.items()} == {
        name: images[name] for name in ("postgres", "rabbitmq", "redis")
    }
    assert all(health_checked(service) for service in services.values())
    assert services["postgres"]["env"] == {"POSTGRES_HOST_AUTH_METHOD": "trust"}
    assert "env" not in services["rabbitmq"]  # guest/guest, which the image lets in
    for name, port in (("postgres", 5432), ("rabbitmq", 5672), ("redis", 6379)):
        assert published(services[name], port), name


def test_make_smoke_says_why_it_fails(bake):
    """CI's check of the running stack fails, with its reason, when no API answers;
    it passes against a real stack in the compose boot and against `make api`."""
    result = smoke(bake(), 9, SMOKE_TIMEOUT="2")
    assert result.returncode != 0
    assert "http://127.0.0.1:9 was not ready within 2 s" in result.stderr


class StandInApi(http.server.BaseHTTPRequestHandler):
    """The routes `make smoke` calls: ready, a login that wants .env's password,
    and a task that gets 504 (no worker yet) before it succeeds."""

    password = ""
    tasks_without_worker = 2
    login_answer: tuple[int, bytes] | None = None

    def do_GET(self):
        self.answer(200, b'{"status": "ready"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if self.path == "/api/v1/auth/token":
            if self.login_answer:
                self.answer(*self.login_answer)
            elif urllib.parse.parse_qs(body)["password"] == [self.password]:
                self.answer(200, b'{"access_token": "t", "token_type": "bearer"}')
            else:
                self.answer(401, b'{"detail": "Incorrect e-mail or password"}')
        elif StandInApi.tasks_without_worker:
            StandInApi.tasks_without_worker -= 1
            self.answer(504, b'{"detail": "no worker"}')
        elif self.path == "/api/v1/tasks/echo":
            reply = {"task_id": "x", "status": "SUCCESS", "result": json.loads(body)["text"]}
            self.answer(200, json.dumps(reply).encode())
        else:
            self.answer(404, b'{"detail": "Not Found"}')

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in_api(monkeypatch):
    monkeypatch.setattr(StandInApi, "tasks_without_worker", 2)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def smoke(project, port, **env):
    return subprocess.run(
        ["make", "smoke"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "API_PORT": str(port), "SMOKE_TIMEOUT": "20", **env},
    )


def test_make_smoke_reads_env_as_compose_does_and_waits_for_a_worker(
    bake, stand_in_api, monkeypatch
):
    project = bake()
    monkeypatch.setattr(StandInApi, "password", "with spaces # and a hash")
    (project / ".env").write_text(
        "FIRST_SUPERUSER_PASSWORD=first\n"
        "FIRST_SUPERUSER_EMAIL=boss@example.com  # the login\n"
        f"export FIRST_SUPERUSER_PASSWORD='{StandInApi.password}'\n"
    )
    result = smoke(project, stand_in_api)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "came back: echo 'smoke test'" in result.stdout
    assert StandInApi.tasks_without_worker == 0


def test_make_smoke_reports_an_answer_that_is_not_json(bake, stand_in_api, monkeypatch):
    monkeypatch.setattr(StandInApi, "login_answer", (500, b"Internal Server Error"))
    result = smoke(bake(), stand_in_api)
    assert result.returncode != 0
    assert "login as the first superuser got 500: Internal Server Error" in result.stderr
    assert "Traceback" not in result.stderr
