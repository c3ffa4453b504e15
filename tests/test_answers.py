"""Each answer changes exactly what it should in the rendered project."""

import json
import re
import subprocess
import sys

import pytest
from conftest import TEMPLATE, choice_variables, project_files

SECRET_NAMES = (
    "SECRET_KEY",
    "POSTGRES_PASSWORD",
    "RABBITMQ_DEFAULT_PASS",
    "REDIS_PASSWORD",
    "FIRST_SUPERUSER_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "FLOWER_PASSWORD",
)
# A phrase that only the chosen license's text contains.
LICENSE_PHRASES = {
    "MIT": "Permission is hereby granted, free of charge",
    "BSD-3-Clause": "Redistribution and use in source and binary forms",
    "Apache-2.0": "Licensed under the Apache License, Version 2.0",
}
# Files that an answer removes from the default render; every other answer
# must leave the set of files alone.
REMOVED_BY_ANSWER = {
    ("open_source_license", "Not open source"): {"LICENSE"},
    ("queue_type", "classic"): {
        "compose.cluster.yaml",
        "docs/broker-cluster.md",
        "rabbitmq/cluster.conf",
    },
    ("use_examples", False): {
        "api/app/api/v1/private/example_tasks.py",
        "api/app/api/v1/private/notes.py",
        "api/app/api/v1/sockets/live_page.py",
        "api/app/api/v1/sockets/page/icon.svg",
        "api/app/api/v1/sockets/page/live.css",
        "api/app/api/v1/sockets/page/live.html",
        "api/app/api/v1/sockets/page/live.js",
        "api/app/models/note.py",
        "api/app/schemas/example_task.py",
        "api/app/schemas/note.py",
        "api/migrations/versions/20260102_0002_notes.py",
        "api/tests/test_example_task_socket.py",
        "api/tests/test_example_tasks.py",
        "api/tests/test_live_page.py",
        "api/tests/test_notes.py",
        "worker/tests/test_example_tasks.py",
        "worker/worker/example_tasks.py",
    },
    ("use_websockets", False): {
        "api/app/api/v1/sockets/__init__.py",
        "api/app/api/v1/sockets/config.py",
        "api/app/api/v1/sockets/live_page.py",
        "api/app/api/v1/sockets/page/icon.svg",
        "api/app/api/v1/sockets/page/live.css",
        "api/app/api/v1/sockets/page/live.html",
        "api/app/api/v1/sockets/page/live.js",
        "api/app/api/v1/sockets/task_socket.py",
        "api/benchmarks/socket_events.py",
        "api/tests/test_example_task_socket.py",
        "api/tests/sockets.py",
        "api/tests/test_live_page.py",
        "api/tests/test_task_socket.py",
        "docs/websockets.md",
    },
    ("use_monitoring", False): {
        "api/tests/test_kubernetes_monitoring.py",
        "compose.monitoring.yaml",
        "deploy/kubernetes/monitoring/kustomization.yaml",
        "deploy/kubernetes/monitoring/service-monitor.yaml",
        "docs/kubernetes-monitoring.md",
        "docs/monitoring.md",
        "monitoring/alertmanager/alertmanager.yml",
        "monitoring/flower/Dockerfile",
        "monitoring/flower/celeryconfig.py",
        "monitoring/grafana/dashboards/api.json",
        "monitoring/grafana/dashboards/celery.json",
        "monitoring/grafana/dashboards/postgres.json",
        "monitoring/grafana/dashboards/rabbitmq.json",
        "monitoring/grafana/dashboards/redis.json",
        "monitoring/grafana/provisioning/dashboards/dashboards.yml",
        "monitoring/grafana/provisioning/datasources/prometheus.yml",
        "monitoring/prometheus/alerts.yml",
        "monitoring/prometheus/alerts_test.yml",
        "monitoring/prometheus/prometheus.yml",
        "scripts/kubernetes_rules.py",
    },
    ("use_github_actions", False): {".github/dependabot.yml", ".github/workflows/ci.yml"},
    ("use_kubernetes", False): {
        "api/tests/kubernetes_manifests.py",
        "api/tests/test_kubernetes.py",
        "api/tests/test_kubernetes_monitoring.py",
        "deploy/kubernetes/base/api.yaml",
        "deploy/kubernetes/base/autoscaling.yaml",
        "deploy/kubernetes/base/kustomization.yaml",
        "deploy/kubernetes/base/namespace.yaml",
        "deploy/kubernetes/base/network-policies.yaml",
        "deploy/kubernetes/base/workers.yaml",
        "deploy/kubernetes/monitoring/kustomization.yaml",
        "deploy/kubernetes/monitoring/service-monitor.yaml",
        "deploy/kubernetes/overlays/local/kustomization.yaml",
        "deploy/kubernetes/overlays/local/services.yaml",
        "deploy/kubernetes/overlays/production/kustomization.yaml",
        "docs/kubernetes-monitoring.md",
        "docs/kubernetes.md",
        "scripts/kubernetes_rules.py",
        "scripts/kubernetes_secrets.py",
    },
}
# What only a project with the monitoring stack mentions. (The API's own
# /metrics is there either way.)
MONITORING_WORDS = re.compile(
    r"(?i:grafana|alertmanager|flower|exporter|monitoring)|PROMETHEUS_(?!MULTIPROC)"
)
# What only a project with the GitHub Actions workflow mentions.
GITHUB_ACTIONS_WORDS = re.compile(r"(?i:github|dependabot)")
# What only a project with quorum queues mentions: the cluster overlay.
CLUSTER_WORDS = re.compile(r"compose\.cluster|cluster\.conf|broker-cluster|ERLANG_COOKIE")
# What only a project with the Kubernetes manifests mentions.
KUBERNETES_WORDS = re.compile(r"(?i:kubernetes|kustomiz|kubectl|\bkeda\b)")
# What only a project with WebSockets mentions, in any of its text files.
WEBSOCKET_WORDS = re.compile(r"(?i:websocket)|\bWS_[A-Z]|/live\b")
# What only a project with the examples mentions: the example resource, the
# example tasks and their workflows, the live page that starts them.
EXAMPLE_WORDS = re.compile(
    r"\bnotes?\b|\bNote(Create|Public|Update)?\b(?!:)"
    r"|(?i:integers?[-_ ](multiplication|sum)|(?<!cancel_)long[-_ ]running"
    r"|/workflows/|/live\b|example[-_ ]tasks?)"
)


def env_values(path):
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def relative_files(project):
    return {path.relative_to(project).as_posix() for path in project_files(project)}


def test_defaults_render_the_documented_layout(bake):
    project = bake()
    assert project.name == "my_service"
    expected = {
        ".cookiecutter.json",
        ".env",
        ".env.example",
        ".gitignore",
        "LICENSE",
        "Makefile",
        "README.md",
        "api/pyproject.toml",
        "api/alembic.ini",
        "api/app/main.py",
        "api/app/core/config.py",
        "api/app/api/v1/public/health.py",
        "worker/pyproject.toml",
        "worker/worker/celery_app.py",
        "worker/worker/config.py",
        "worker/worker/tasks.py",
    }
    assert expected <= relative_files(project)


@pytest.mark.parametrize("license_name", LICENSE_PHRASES)
def test_license_text_follows_the_answer(bake, license_name):
    project = bake(open_source_license=license_name, author_name="Ada Team")
    text = (project / "LICENSE").read_text()
    found = [name for name, phrase in LICENSE_PHRASES.items() if phrase in text]
    assert found == [license_name]
    assert "Copyright" in text
    assert "Ada Team" in text
    assert f'license = "{license_name}"' in (project / "api/pyproject.toml").read_text()
    assert not (project / "licenses").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in choice_variables().items() for value in values],
)
def test_an_answer_adds_or_removes_only_its_own_files(bake, name, value):
    default_files = relative_files(bake())
    files = relative_files(bake(**{name: value}))
    assert files == default_files - REMOVED_BY_ANSWER.get((name, value), set())


def mentions(project, words):
    """Where the project's files (the answers file aside) say any of `words`."""
    return [
        f"{path.relative_to(project)}: {match.group()}"
        for path in project_files(project)
        if path.name != ".cookiecutter.json"
        for match in [words.search(path.read_text())]
        if match
    ]


def test_without_examples_nothing_mentions_them(bake):
    assert mentions(bake(use_examples=False), EXAMPLE_WORDS) == []


def test_without_websockets_nothing_mentions_them(bake):
    assert mentions(bake(use_websockets=False), WEBSOCKET_WORDS) == []


def test_without_monitoring_nothing_mentions_it(bake):
    assert mentions(bake(use_monitoring=False), MONITORING_WORDS) == []


def test_without_github_actions_nothing_mentions_them(bake):
    assert mentions(bake(use_github_actions=False), GITHUB_ACTIONS_WORDS) == []


def test_without_kubernetes_nothing_mentions_it(bake):
    assert mentions(bake(use_kubernetes=False), KUBERNETES_WORDS) == []


def test_with_classic_queues_nothing_mentions_the_cluster_overlay(bake):
    """Classic queues live on one node: the three-node overlay is for quorum ones."""
    assert mentions(bake(queue_type="quorum"), CLUSTER_WORDS) != []
    assert mentions(bake(queue_type="classic"), CLUSTER_WORDS) == []


def test_with_websockets_the_route_the_page_and_their_settings_are_there(bake):
    project = bake()
    routes = (project / "api/app/api/v1/__init__.py").read_text()
    assert "OTHER_ROUTERS = [task_socket.router, live_page.router]" in routes
    dependencies = (project / "api/pyproject.toml").read_text()
    assert '"websockets>=' in dependencies
    assert "WS_SOCKETS_PER_USER" in (project / "api/app/api/v1/sockets/config.py").read_text()
    docs = (project / "docs/websockets.md").read_text()
    assert "/api/v1/ws/tasks/{task_id}" in docs and "/live" in docs


def test_not_open_source_has_no_license_file(bake):
    project = bake(open_source_license="Not open source")
    assert not (project / "LICENSE").exists()
    assert not (project / "licenses").exists()
    assert 'license = "LicenseRef-Proprietary"' in (project / "worker/pyproject.toml").read_text()


def test_worker_name_is_the_queue_of_the_worker_and_the_producer(bake):
    project = bake(worker_name="billing.jobs")
    worker_config = (project / "worker/worker/config.py").read_text()
    assert 'WORKER_NAME = "billing.jobs"' in worker_config
    assert "CELERY_TASK_QUEUE: str = WORKER_NAME" in worker_config
    api_config = (project / "api/app/core/config.py").read_text()
    assert 'WORKER_NAME = "billing.jobs"' in api_config
    assert "CELERY_TASK_QUEUE: str = WORKER_NAME" in api_config
    assert 'CELERY_LONG_TASK_QUEUE: str = WORKER_NAME + "-long"' in api_config
    assert env_values(project / ".env")["CELERY_TASK_QUEUE"] == "billing.jobs"
    assert "--hostname=$(WORKER_NAME)@%h" in (project / "Makefile").read_text()
    assert "WORKER_NAME := billing.jobs" in (project / "Makefile").read_text()


def test_worker_name_defaults_from_the_slug(bake):
    project = bake(project_name="Order Desk")
    assert env_values(project / ".env")["CELERY_TASK_QUEUE"] == "order-desk-worker"


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_pickle_is_accepted_only_when_chosen(bake, serializer):
    project = bake(task_serializer=serializer)
    config = project / "worker/worker/config.py"
    # Evaluate the worker's serializer constants as the worker would.
    namespace = {}
    source = config.read_text()
    constants = re.findall(r"^(?:TASK_SERIALIZER|ACCEPT_CONTENT) = .*$", source, re.MULTILINE)
    exec("\n".join(constants), namespace)
    assert namespace["TASK_SERIALIZER"] == serializer
    assert ("pickle" in namespace["ACCEPT_CONTENT"]) is (serializer == "pickle")
    assert "json" in namespace["ACCEPT_CONTENT"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Service", "my_service"),
        ("Order-Desk API", "order_desk_api"),
        ("Café Délices", "cafe_delices"),
        ("Crème.Brûlée v2", "creme_brulee_v2"),
        ("  Spaced   OUT  ", "spaced_out"),
        ("Überwachung Ärzte", "uberwachung_arzte"),
    ],
)
def test_names_give_a_valid_slug(bake, name, slug):
    project = bake(project_name=name)
    assert project.name == slug
    assert slug.isidentifier()


def test_env_has_fresh_secrets_and_is_ignored_by_git(bake):
    first, second = bake(), bake()
    values = [env_values(project / ".env") for project in (first, second)]
    for name in SECRET_NAMES:
        assert len(values[0][name]) >= 32, name
        assert "changethis" not in values[0][name]
        assert values[0][name] != values[1][name], name
    # Each secret is its own: no two settings share one.
    assert len({values[0][name] for name in SECRET_NAMES}) == len(SECRET_NAMES)
    # The database URL carries the generated password, not the placeholder.
    assert values[0]["POSTGRES_PASSWORD"] in values[0]["POSTGRES_DATABASE_URL"]
    assert "changethis" not in (first / ".env").read_text()
    assert "changethis" in (first / ".env.example").read_text()
    assert (first / ".env").stat().st_mode & 0o077 == 0

    subprocess.run(["git", "init", "-q"], cwd=first, check=True)
    ignored = subprocess.run(
        ["git", "check-ignore", ".env", ".env.example"], cwd=first, capture_output=True, text=True
    )
    assert ignored.stdout.split() == [".env"]


def test_make_env_writes_a_fresh_env_once(bake):
    """A fresh clone has no .env (it is git-ignored): `make env` writes one, as the
    template did, and leaves an existing one alone."""
    project = bake()
    rendered = env_values(project / ".env")
    (project / ".env").unlink()
    written = subprocess.run(["make", "env"], cwd=project, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    values = env_values(project / ".env")
    assert (project / ".env").stat().st_mode & 0o077 == 0
    assert "changethis" not in (project / ".env").read_text()
    assert [name for name in SECRET_NAMES if values[name] == rendered[name]] == []
    assert values["POSTGRES_PASSWORD"] in values["POSTGRES_DATABASE_URL"]
    text = (project / ".env").read_text()
    kept = subprocess.run(["make", "env"], cwd=project, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stderr
    assert "kept the existing" in kept.stdout
    assert (project / ".env").read_text() == text


def test_answers_file_replays_the_same_project(bake, tmp_path):
    project = bake(project_name="Replay Me", task_serializer="pickle", version="2.0.0")
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["project_name"] == "Replay Me"
    assert answers["task_serializer"] == "pickle"
    assert not any(key in answers for key in ("_output_dir", "_repo_dir", "_checkout", "_template"))

    replay = subprocess.run(
        [
            *(sys.executable, "-m", "cookiecutter", str(TEMPLATE)),
            *("--replay-file", str(project / ".cookiecutter.json")),
            *("--output-dir", str(tmp_path / "again")),
        ],
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 0, replay.stderr
    again = tmp_path / "again" / project.name
    assert relative_files(again) == relative_files(project)
    for relative in relative_files(project) - {".env"}:
        assert (again / relative).read_bytes() == (project / relative).read_bytes(), relative


def test_the_api_knows_the_worker_tasks_by_name_only(bake):
    project = bake(worker_name="billing.jobs")
    config = (project / "api/app/core/config.py").read_text()
    assert 'WORKER_NAME = "billing.jobs"' in config
    routes = project / "api/app/api/v1/private"
    worker = project / "worker/worker"
    for routes_module, worker_module, task in [
        ("tasks.py", "tasks.py", "echo"),
        ("example_tasks.py", "example_tasks.py", "integer_multiplication"),
        ("example_tasks.py", "example_tasks.py", "integers_sum"),
        ("example_tasks.py", "example_tasks.py", "long_running"),
    ]:
        assert f'f"{{WORKER_NAME}}.{task}"' in (routes / routes_module).read_text()
        assert f'name=f"{{WORKER_NAME}}.{task}"' in (worker / worker_module).read_text()
    for path in (project / "api").rglob("*.py"):
        source = path.read_text()
        assert not re.search(r"^\s*(from|import) worker\b", source, re.MULTILINE), path


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_the_api_and_the_worker_agree_on_the_serializer(bake, serializer):
    project = bake(task_serializer=serializer)
    assert f'TASK_SERIALIZER = "{serializer}"' in (project / "api/app/core/config.py").read_text()
    worker = (project / "worker/worker/config.py").read_text()
    assert f'TASK_SERIALIZER = "{serializer}"' in worker
    assert 'ACCEPT_CONTENT = sorted({TASK_SERIALIZER, "json"})' in worker
    # The engine accepts, besides it, JSON for Celery's own messages, as the worker does.
    messages = (project / "api/taskengine/celery_messages.py").read_text()
    assert 'accept_content=sorted({serializer, "json"})' in messages
