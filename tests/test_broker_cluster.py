"""The render's RabbitMQ cluster (compose.cluster.yaml over compose.yaml),
booted with Compose v2 on the stand-in images (docker_stack.py), and the loss
of a node under load: 2,000 `/async` echo tasks, 32 clients at once, while the
node that leads the task queue is killed (SIGKILL), then started again.

Every task must come back right, none lost and none run twice (the worker's
log names each task it ran), and the cluster must have its three nodes again.
How long the service went without accepting a task, or without finishing one,
is measured and printed: the render's docs/reliability.md gives the figures.

Without a Docker engine this module is skipped with its reason, unless
REQUIRE_DOCKER=1 (CI sets it), which turns the skip into a failure.
"""

import itertools
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import render
from docker_stack import Stack, compose_or_skip, provide_python_base, stand_in_images
from service_client import free_port, log_in, request, wait_for

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
SERVICES = ("postgres", *NODES, "redis", "api", "worker", "worker-long")
TASKS = 2000
CLIENTS = 32
# The leader is killed once this many tasks were accepted, and started again
# DOWN_FOR seconds later.
KILL_AFTER = 400
DOWN_FOR = 15
FINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}
# Celery's line for each task a worker ran to its end.
SUCCEEDED = re.compile(r"Task \S+\.echo\[([0-9a-f-]{36})\] succeeded")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    compose = compose_or_skip("v2", engine=True)
    provide_python_base()
    images = stand_in_images()
    project = render(
        tmp_path_factory.mktemp("broker-cluster"),
        queue_type="quorum",
        use_examples=False,
        use_monitoring=False,
        use_kubernetes=False,
    )
    env_file = project / ".env"
    assert "COMPOSE_FILE=" not in env_file.read_text()
    with env_file.open("a") as settings:
        # As docs/broker-cluster.md tells a team to run it.
        settings.write("COMPOSE_FILE=compose.yaml:compose.cluster.yaml\n")
    env = {**os.environ, **images, "API_PORT": str(free_port())}
    stack = Stack(compose, project, "cfccluster", env, f"http://127.0.0.1:{env['API_PORT']}")
    with stack.booted(SERVICES, 300, "cluster's stack"):
        yield stack


def rabbitmqctl(stack: Stack, node: str, *args: str) -> subprocess.CompletedProcess:
    (container,) = stack.containers(node)
    return subprocess.run(
        ["docker", "exec", container, "rabbitmqctl", "-q", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def running_nodes(stack: Stack, asked: str = "rabbitmq") -> list[str]:
    status = rabbitmqctl(stack, asked, "cluster_status", "--formatter", "json")
    if status.returncode != 0:
        return []
    return sorted(json.loads(status.stdout)["running_nodes"])


def task_queue_leader(stack: Stack, queue: str) -> str:
    """The service of the node that leads the quorum queue."""
    listed = rabbitmqctl(stack, "rabbitmq", "list_queues", "name", "type", "leader", "members")
    for line in listed.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == queue:
            assert fields[1] == "quorum", line
            assert len(re.findall(r"rabbit@", fields[3])) == 3, f"not on three nodes: {line}"
            return fields[2].removeprefix("rabbit@")
    pytest.fail(f"no queue {queue}:\n{listed.stdout}{listed.stderr}")


def test_the_three_nodes_form_one_cluster_with_the_task_queue_on_each(cluster):
    assert running_nodes(cluster) == [f"rabbit@{node}" for node in NODES]
    assert task_queue_leader(cluster, cluster.read_env("CELERY_TASK_QUEUE")) in NODES


class Load:
    """TASKS echo tasks sent to /async by CLIENTS threads, each polled to its end.
    A refused submission (503 while the broker moves) is sent again."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.stack, self.token = stack, token
        self.lock = threading.Lock()
        self.next_number = 0
        self.accepted_at: list[float] = []
        self.ended_at: list[float] = []
        self.refused = Counter()
        self.ends: dict[str, tuple[str, object, str]] = {}  # task id: status, result, text

    def take(self) -> int | None:
        with self.lock:
            if self.next_number == TASKS:
                return None
            self.next_number += 1
            return self.next_number

    def client(self) -> None:
        while (number := self.take()) is not None:
            text = f"task {number}"
            task_id = self.submit(text)
            body = self.poll(task_id)
            with self.lock:
                self.ended_at.append(time.monotonic())
                self.ends[task_id] = (body["status"], body.get("result"), text)

    def submit(self, text: str) -> str:
        url = f"{self.stack.api_url}/api/v1/tasks/echo/async"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, body, _ = request("POST", url, body={"text": text}, token=self.token)
            except OSError as error:
                status, body = type(error).__name__, {}
            if status == 202:
                with self.lock:
                    self.accepted_at.append(time.monotonic())
                return body["task_id"]
            with self.lock:
                self.refused[status] += 1
            time.sleep(0.1)
        pytest.fail(
            f"{text} was not accepted within 120 s: {self.refused}; the API's log:\n"
            + self.stack.logs("api")[-4000:]
        )

    def poll(self, task_id: str) -> dict:
        url = f"{self.stack.api_url}/api/v1/tasks/{task_id}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                status, body, _ = request("GET", url, token=self.token)
            except OSError:
                status, body = None, {}
            if status == 200 and body["status"] in FINAL:
                return body
            time.sleep(0.1)
        pytest.fail(f"task {task_id} did not end within 300 s")


def longest_gap(times: list[float], since: float, until: float) -> float:
    moments = sorted([since, *(moment for moment in times if since <= moment <= until), until])
    return max(later - earlier for earlier, later in itertools.pairwise(moments))


def test_losing_the_leader_under_load_loses_no_task_and_runs_none_twice(cluster):
    token = log_in(
        cluster.api_url,
        cluster.read_env("FIRST_SUPERUSER_EMAIL"),
        cluster.read_env("FIRST_SUPERUSER_PASSWORD"),
    )
    queue = cluster.read_env("CELERY_TASK_QUEUE")
    leader = task_queue_leader(cluster, queue)
    load = Load(cluster, token)
    timeline: dict[str, float] = {}

    def lose_the_leader() -> None:
        while len(load.accepted_at) < KILL_AFTER:
            time.sleep(0.01)
        (container,) = cluster.containers(leader)
        timeline["killed"] = time.monotonic()
        subprocess.run(["docker", "kill", container], check=True, capture_output=True)
        time.sleep(DOWN_FOR)
        timeline["restarted"] = time.monotonic()
        subprocess.run(["docker", "start", container], check=True, capture_output=True)

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS + 1) as pool:
        chaos = pool.submit(lose_the_leader)
        clients = [pool.submit(load.client) for _ in range(CLIENTS)]
        for client in clients:
            client.result()
        chaos.result()
    finished = time.monotonic()
    wait_for(
        lambda: cluster.healthy(leader) and len(running_nodes(cluster)) == 3,
        180,
        f"{leader} did not rejoin the cluster",
        lambda: cluster.logs(leader),
    )
    new_leader = task_queue_leader(cluster, queue)

    logs = cluster.run("logs", "--no-color", "worker", "worker-long", timeout=120).stdout
    runs = Counter(SUCCEEDED.findall(logs))
    ends = Counter(status for status, _, _ in load.ends.values())
    wrong = [task for task, (status, result, text) in load.ends.items() if result != text]
    twice = [task for task, count in runs.items() if count > 1 and task in load.ends]
    killed = timeline["killed"]
    without_accepting = longest_gap(load.accepted_at, killed, finished)
    without_ending = longest_gap(load.ended_at, killed, finished)
    print(
        f"\n{TASKS} tasks, {CLIENTS} clients, {finished - started:.1f} s; leader {leader} killed"
        f" after {KILL_AFTER} accepted, started again {DOWN_FOR} s later; new leader"
        f" {new_leader}. Ends {dict(ends)}, wrong {len(wrong)}, run twice {len(twice)};"
        f" submissions refused {dict(load.refused)}; longest time without a task accepted"
        f" {without_accepting:.1f} s, without a task ended {without_ending:.1f} s"
    )
    assert ends == {"SUCCESS": TASKS}, (ends, wrong[:5])
    assert wrong == []
    # A message whose acknowledgement was lost with the node comes back: the
    # worker's mark of the task's end keeps it from running twice.
    assert twice == [], twice
    # The worker's log names every task it ran: each ended by a worker, once.
    assert set(load.ends) <= set(runs), len(set(load.ends) - set(runs))
