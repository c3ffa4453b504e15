"""The monitoring stack booted for real (Compose v2, images built here) and
asked, through Prometheus's HTTP API, whether what it monitors answers: every
scrape target up, every alert rule evaluated without error, and every
dashboard query, its variables resolved, answered on live data after a short
load of tasks (one of them failing).

Grafana cannot be installed on these machines (no registry reachable, no Debian
package): its dashboards are proven here through Prometheus, query by query,
and its provisioning files are checked in test_monitoring.py. The Flower image
is built from the rendered Dockerfile, Flower coming from PyPI.
"""

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import render
from docker_stack import (
    BOOT_TIMEOUT,
    Stack,
    compose_or_skip,
    provide_python_base,
    stand_in_images,
)
from service_client import answers, free_port, log_in, request, wait_for
from test_monitoring import dashboard_queries, dashboards

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

# Everything but Grafana.
SERVICES = (
    *("postgres", "rabbitmq", "redis", "migrate", "api", "worker", "worker-long"),
    *("prometheus", "alertmanager", "flower", "postgres-exporter", "redis-exporter"),
)
# The default answers' worker name.
WORKER_NAME = "my-service-worker"
MONITORING_IMAGES = ("prometheus", "alertmanager", "postgres-exporter", "redis-exporter")
PUBLISHED = ("API_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT", "FLOWER_PORT")
JOBS = {
    *("api", "celery", "rabbitmq", "rabbitmq-queues", "redis", "postgres"),
    *("alertmanager", "prometheus"),
}
WAITING_TASKS = 10
# Seconds after the load: several scrapes (every 2 s) and rule evaluations.
SETTLE = 8


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            reply = json.load(response)
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, expression: str) -> list[dict]:
        """The series an instant query returns (an error fails the test)."""
        try:
            return self.get("query", query=expression)["result"]
        except urllib.error.HTTPError as error:
            pytest.fail(f"{expression}: {error.read().decode()}")

    def targets(self) -> dict[str, str]:
        """Each active target's job and instance, with its health."""
        return {
            f"{target['labels']['job']} {target['labels']['instance']}": target["health"]
            for target in self.get("targets", state="active")["activeTargets"]
        }

    def rules(self) -> list[dict]:
        return [rule for group in self.get("rules")["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module", params=["json", "pickle"])
def stack(request, tmp_path_factory):
    compose = compose_or_skip("v2", engine=True)
    provide_python_base()
    images = {**stand_in_images(), **stand_in_images(*MONITORING_IMAGES)}
    serializer = request.param
    project = render(
        tmp_path_factory.mktemp(f"monitoring-{serializer}"), task_serializer=serializer
    )
    env_file = project / ".env"
    settings = env_file.read_text()
    # Two API processes in the container: Prometheus must see their sum.
    assert "\nAPI_WORKERS=1\n" in settings
    settings = settings.replace("\nAPI_WORKERS=1\n", "\nAPI_WORKERS=2\n")
    # Scrape and evaluate every 2 s, so a short run has data; a task that runs
    # for 3 s fails at its soft time limit of 1 s: the failing task of the load.
    # These keep their defaults in compose, so .env gains them.
    short = ("PROMETHEUS_SCRAPE_INTERVAL=2s", "TASK_SOFT_TIME_LIMIT=1", "TASK_TIME_LIMIT=5")
    settings = "\n".join([settings.rstrip("\n"), *short, ""])
    env_file.write_text(settings)
    ports = {name: str(free_port()) for name in PUBLISHED}
    env = {**os.environ, **images, **ports}
    api_url = f"http://127.0.0.1:{ports['API_PORT']}"
    booted = Stack(compose, project, f"cfcmonitoring{serializer}", env, api_url)
    booted.run("down", "--volumes", "--remove-orphans")
    try:
        booted.check("up", "--build", "--detach", *SERVICES, timeout=BOOT_TIMEOUT)
        wait_for(
            lambda: answers(f"{booted.api_url}/api/v1/health/ready"),
            240,
            "the API was not ready",
            booted.logs,
        )
        yield booted, Prometheus(f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}")
    finally:
        booted.run("down", "--volumes", "--remove-orphans", timeout=300)


def all_up(prometheus: Prometheus) -> bool:
    targets = prometheus.targets()
    return {target.split()[0] for target in targets} == JOBS and set(targets.values()) == {"up"}


@pytest.fixture(scope="module")
def loaded(stack):
    """Once every target is up, a short load: waiting tasks, and one that
    fails; then time for a few scrapes and evaluations after its end."""
    booted, prometheus = stack
    wait_for(
        lambda: all_up(prometheus),
        120,
        f"every job of {sorted(JOBS)} was not up",
        lambda: json.dumps(prometheus.targets(), indent=1) + booted.logs("prometheus"),
    )
    token = log_in(
        booted.api_url,
        booted.read_env("FIRST_SUPERUSER_EMAIL"),
        booted.read_env("FIRST_SUPERUSER_PASSWORD"),
    )
    tasks = f"{booted.api_url}/api/v1/tasks"
    for integer in range(WAITING_TASKS):
        status, reply, _ = request(
            "POST", f"{tasks}/integer-multiplication", body={"integer": integer}, token=token
        )
        assert status == 200 and reply["result"] == 2 * integer, reply
    status, failing, _ = request(
        "POST", f"{tasks}/long-running/async", body={"seconds": 3, "steps": 3}, token=token
    )
    assert status == 202, failing
    ended = {}

    def failed() -> bool:
        _, reply, _ = request("GET", f"{tasks}/{failing['task_id']}", token=token)
        ended.update(reply)
        return reply["status"] == "FAILURE"

    wait_for(failed, 60, f"the long task did not fail ({ended})", booted.logs)
    time.sleep(SETTLE)
    return booted, prometheus


def test_every_scrape_target_is_up(loaded):
    _, prometheus = loaded
    targets = prometheus.targets()
    print("\ntargets: " + ", ".join(f"{t}: {h}" for t, h in sorted(targets.items())))
    assert {target.split()[0] for target in targets} == JOBS
    assert set(targets.values()) == {"up"}


def test_prometheus_counts_every_request_of_both_api_processes(loaded):
    _, prometheus = loaded
    answered = prometheus.query(
        'sum(http_requests_total{job="api", method="POST",'
        ' route="/api/v1/tasks/integer-multiplication", status="200"})'
    )
    assert [series["value"][1] for series in answered] == [str(WAITING_TASKS)]


def test_every_alert_rule_evaluates_without_error(loaded):
    _, prometheus = loaded
    rules = prometheus.rules()
    assert len(rules) >= 9
    for rule in rules:
        assert rule["health"] == "ok", rule
        prometheus.query(rule["query"])  # fails the test on an error
    print("\nrules: " + ", ".join(f"{r['name']}: {r['health']}/{r['state']}" for r in rules))


def test_every_dashboard_query_answers_on_live_data(loaded):
    booted, prometheus = loaded
    empty, report = [], []
    for name, board in dashboards(booted.project).items():
        for query in dashboard_queries(board)[len(board["templating"]["list"]) :]:
            series = prometheus.query(query)
            report.append(f"{name}: {len(series)} series  {query}")
            if not series:
                empty.append(f"{name}: {query}")
    print("\n" + "\n".join(report))
    assert empty == []


def flower(booted: Stack, path: str, authenticated: bool = True) -> dict:
    """A JSON page of Flower's, with its credentials or without."""
    page = urllib.request.Request(f"http://127.0.0.1:{booted.env['FLOWER_PORT']}{path}")
    if authenticated:
        account = f"{booted.read_env('FLOWER_USER')}:{booted.read_env('FLOWER_PASSWORD')}"
        page.add_header("Authorization", f"Basic {base64.b64encode(account.encode()).decode()}")
    with urllib.request.urlopen(page, timeout=30) as answer:
        return json.load(answer)


def test_flower_wants_its_credentials(loaded):
    booted, _ = loaded
    with pytest.raises(urllib.error.HTTPError) as refused:
        flower(booted, "/api/workers", authenticated=False)
    assert refused.value.code == 401


def test_flower_reads_the_workers_answers(loaded):
    """Flower asks the workers by remote control, and they answer in the
    project's serializer (pickle in a pickle render): both workers tell it
    their tasks."""
    booted, _ = loaded
    workers = flower(booted, "/api/workers?refresh=1")
    registered = {name.split("@")[0]: info.get("registered") for name, info in workers.items()}
    tasks = ("echo", "integer_multiplication", "integers_sum", "long_running")
    expected = [f"{WORKER_NAME}.{task}" for task in tasks]
    assert registered == {WORKER_NAME: expected, f"{WORKER_NAME}-long": expected}, workers


def test_monitoring_pages_are_on_loopback_and_the_exporters_unpublished(loaded):
    booted, _ = loaded
    published = {}
    for service in ("prometheus", "alertmanager", "flower", "postgres-exporter", "redis-exporter"):
        (container,) = booted.containers(service)
        ports = subprocess.run(["docker", "port", container], capture_output=True, text=True)
        published[service] = ports.stdout.split()
    env = booted.env
    assert published == {
        "prometheus": ["9090/tcp", "->", f"127.0.0.1:{env['PROMETHEUS_PORT']}"],
        "alertmanager": ["9093/tcp", "->", f"127.0.0.1:{env['ALERTMANAGER_PORT']}"],
        "flower": ["5555/tcp", "->", f"127.0.0.1:{env['FLOWER_PORT']}"],
        "postgres-exporter": [],
        "redis-exporter": [],
    }
