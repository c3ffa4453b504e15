"""The production overlay's workloads booted by `podman kube play`, and the
render's smoke test run against them.

No Kubernetes API server can run on .ci/run's machines. Debian's podman (4.3)
plays what a pod is made of: Deployments with their init container, security
contexts, volumes and environment from a Secret. So the service's own pods
boot here, from the manifests as `kubectl kustomize` builds them, against this
machine's PostgreSQL, RabbitMQ and Redis as the managed services (a database
and a vhost of their own), with the Secret made as docs/kubernetes.md makes it
(the same commands, written out here). The images are built from the
render's Dockerfile under the overlay's names and loaded into podman; they
stay in Docker, as the compose boot's do, so that the next run builds from
their cache. The few task results left in Redis expire (RESULT_EXPIRES), as
those of the service's own tests.

What podman does not play (Services, the HPA, PDBs, NetworkPolicies, KEDA's
resources) and the local overlay's StatefulSets are checked without a cluster:
test_kubernetes.py and the render's api/tests/test_kubernetes.py.

It needs PostgreSQL, RabbitMQ (with rabbitmqctl) and Redis on the machine, as
the service's tests do. Without podman or a Docker engine it is skipped with
its reason, unless REQUIRE_DOCKER=1 (CI sets it), which turns the skip into a
failure; BOOT_PODMAN=0 leaves it out.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import render
from docker_stack import engine_answers, provide_python_base, run
from service_client import answers, free_port, request, wait_for

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("boot")]

# Podman's OCI runtime here: runc without the resource limits (its docstring says why).
RUNTIME = Path(__file__).resolve().parent / "podman_runtime.py"
PODMAN = ["podman", "--runtime", str(RUNTIME)]
# The Dockerfile's target that each Deployment's image is built from.
TARGETS = {"api": "api", "worker": "worker", "worker-long": "worker"}
# The queue each worker consumes, with the default answers (WORKER_NAME).
QUEUES = {"worker": "my-service-worker", "worker-long": "my-service-worker-long"}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def pod_name(deployment: str) -> str:
    """podman's name for the Deployment's pod (one replica); its containers
    are named after it: `api-pod-0-api`."""
    return f"{deployment}-pod-0"


def podman_or_skip() -> None:
    """Skipped where BOOT_PODMAN=0 (a machine without PostgreSQL, RabbitMQ and
    Redis of its own: GitHub's boot job); else podman and Docker must be there,
    or the test is skipped, or fails under REQUIRE_DOCKER=1, as in CI."""
    if os.environ.get("BOOT_PODMAN") == "0":
        pytest.skip("BOOT_PODMAN=0 leaves the Kubernetes boot out")
    problem = engine_answers()
    if shutil.which("podman") is None:
        problem = "no podman command (apt-get install podman)"
    if problem:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1, but {problem}")
        pytest.skip(f"needs podman and Docker: {problem}")


def podman(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, **options)


RABBITMQCTL = ["rabbitmqctl", "--quiet"]
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]


def playable(built: dict, api_port: int) -> dict:
    """The Deployment as podman 4.3 can play it here; nothing else changes."""
    deployment = copy.deepcopy(built)
    pod = deployment["spec"]["template"]["spec"]
    name = deployment["metadata"]["name"]
    # The managed services are this machine's, which listen on its loopback
    # only: the pods share the machine's network, where podman maps no port.
    pod["hostNetwork"] = True
    for container in pod["containers"]:
        container.pop("ports", None)
        if name == "api":
            container["env"].append({"name": "API_PORT", "value": str(api_port)})
    # Under Always, podman 4.3 starts the init container again each time it
    # has finished. What Always adds, restarting a container that exited 0,
    # is not what this test looks at: a restart at all fails it.
    pod["restartPolicy"] = "OnFailure"
    # Podman 4.3 plays an emptyDir as a named volume, shared by every pod that
    # names it alike: one name per pod, as each pod has its own in a cluster.
    for volume in pod.get("volumes", []):
        volume["name"] = f"{name}-{volume['name']}"
    for container in pod.get("initContainers", []) + pod["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = f"{name}-{mount['name']}"
    return deployment


def images_in_podman(project: Path, deployments: list[dict]) -> list[str]:
    """Build each image that the Deployments name, under that name, and load it
    into podman."""
    images = {}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            images[container["image"]] = TARGETS[deployment["metadata"]["name"]]
    for image, target in images.items():
        run("docker", "build", "--quiet", f"--target={target}", f"--tag={image}", ".", cwd=project)
    saved = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    loaded = subprocess.run([*PODMAN, "load", "--quiet"], stdin=saved.stdout, capture_output=True)
    saved.stdout.close()
    assert saved.wait() == 0 and loaded.returncode == 0, loaded.stderr.decode()
    return list(images)


def create_secret(project: Path) -> None:
    """The Secret as docs/kubernetes.md makes it, written out instead of
    applied; podman 4.3 reads a secretKeyRef from a podman secret holding the
    Secret's data as JSON."""
    keys = run(sys.executable, "scripts/kubernetes_secrets.py", "production", cwd=project)
    command = [
        "kubectl",
        "create",
        "secret",
        "generic",
        "app-secrets",
        "--from-env-file=/dev/stdin",
    ]
    secret = subprocess.run(
        [*command, "--dry-run=client", "--output=json"],
        input=keys.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    podman("secret", "rm", "app-secrets")  # what an interrupted run left
    data = json.dumps(json.loads(secret.stdout)["data"])
    podman("secret", "create", "app-secrets", "-", input=data, check=True)


def undone(*command: str, may_be_gone: bool = False) -> str | None:
    """Run a step of the clean-up; what went wrong, if anything (the steps
    after it still run)."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return f"{' '.join(command)} timed out"
    if result.returncode == 0 or may_be_gone:
        return None
    return f"{' '.join(command)}: {result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    podman_or_skip()
    provide_python_base()
    project = render(tmp_path_factory.mktemp("kubernetes-boot"))
    suffix = uuid.uuid4().hex[:10]
    database, vhost = f"kubernetes_boot_{suffix}", f"kubernetes-boot-{suffix}"
    # A production .env names the managed services (docs/kubernetes.md).
    with (project / ".env").open("a") as env:
        env.write(
            f"POSTGRES_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/{database}\n"
            f"CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/{vhost}\n"
            "CELERY_RESULT_BACKEND_URL=redis://127.0.0.1:6379/0\n"
        )
    built = run("kubectl", "kustomize", str(project / "deploy/kubernetes/overlays/production"))
    deployments = [d for d in yaml.safe_load_all(built.stdout) if d["kind"] == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(TARGETS)
    api_port = free_port()
    deployments = [playable(deployment, api_port) for deployment in deployments]
    play_file = project / "podman-play.yaml"
    play_file.write_text(yaml.safe_dump_all(deployments))
    base = f"http://127.0.0.1:{api_port}"

    images = []
    try:
        run(*RABBITMQCTL, "add_vhost", vhost)
        run(*RABBITMQCTL, "set_permissions", "--vhost", vhost, "guest", ".*", ".*", ".*")
        images = images_in_podman(project, deployments)
        create_secret(project)
        started = podman("kube", "play", str(play_file), timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        wait_for(
            lambda: answers(f"{base}/api/v1/health/ready"),
            120,
            "the API's pod was not ready",
            lambda: logs(deployments),
        )
        yield {
            "project": project,
            "deployments": deployments,
            "base": base,
            "api_port": api_port,
            "vhost": vhost,
        }
    finally:
        volumes = [v["name"] for d in deployments for v in d["spec"]["template"]["spec"]["volumes"]]
        problems = [
            undone(*PODMAN, "kube", "down", str(play_file), may_be_gone=True),
            # What a play that failed half-way made, which `kube down` leaves.
            undone(*PODMAN, "pod", "rm", "--force", "--ignore", *map(pod_name, TARGETS)),
            undone(*PODMAN, "volume", "rm", "--force", *volumes),
            undone(*PODMAN, "secret", "rm", "app-secrets", may_be_gone=True),
            undone(*PODMAN, "rmi", "--force", *images) if images else None,
            undone(*PSQL, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'),
            undone(*RABBITMQCTL, "delete_vhost", vhost, may_be_gone=True),
        ]
        # Said when nothing else went wrong; else the first failure is the news.
        if sys.exc_info()[1] is None:
            assert [problem for problem in problems if problem] == []


def containers(deployments: list[dict]) -> dict[str, dict]:
    """Each long-running container's manifest entry, by podman's name for it,
    with its pod's spec."""
    found = {}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            found[f"{pod_name(name)}-{container['name']}"] = container | {"pod": pod}
    return found


def logs(deployments: list[dict]) -> str:
    """The output of every container the Deployments have, init containers
    too (a failed migration keeps the API from being ready)."""
    names = [
        f"{pod_name(deployment['metadata']['name'])}-{container['name']}"
        for deployment in deployments
        for key in ("initContainers", "containers")
        for container in deployment["spec"]["template"]["spec"].get(key, [])
    ]
    text = ""
    for name in names:
        result = podman("logs", name)
        text += f"--- {name}\n{(result.stdout + result.stderr)[-4000:]}"
    return text


def test_the_smoke_test_passes_against_the_pods(played):
    smoke = subprocess.run(
        ["make", "smoke"],
        cwd=played["project"],
        env={**os.environ, "API_PORT": str(played["api_port"])},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr + logs(played["deployments"])
    assert "a task ran through a worker and came back" in smoke.stdout


def test_every_probe_of_the_manifests_answers(played):
    """Each probe as the kubelet would run it: an httpGet on the API's port
    (the host's network here), an exec in the container."""
    checked = 0
    for name, container in containers(played["deployments"]).items():
        for kind in PROBES:
            probe = container.get(kind)
            if probe is None:
                continue
            if "httpGet" in probe:
                status = request("GET", played["base"] + probe["httpGet"]["path"])[0]
                assert status == 200, (name, kind, status)
            else:
                executed = podman("exec", name, *probe["exec"]["command"])
                assert executed.returncode == 0, (name, kind, executed.stdout + executed.stderr)
            checked += 1
    # The API's readiness and liveness, and three probes per worker.
    assert checked == 2 + 3 * 2


def test_each_worker_consumes_its_own_queue(played):
    def consumers() -> dict[str, str]:
        listed = run(
            *RABBITMQCTL,
            "list_queues",
            "--no-table-headers",
            "--vhost",
            played["vhost"],
            "name",
            "consumers",
        )
        return dict(line.split("\t") for line in listed.stdout.splitlines())

    # RabbitMQ counts a quorum queue's consumers on its periodic tick, seconds
    # after a worker started consuming (a task may have run through it already).
    wait_for(
        lambda: all(consumers().get(queue) == "1" for queue in QUEUES.values()),
        30,
        "each worker's queue did not have its one consumer",
        lambda: f"{consumers()}\n{logs(played['deployments'])}",
    )


def test_the_long_running_containers_run_as_the_manifests_say(played):
    """Their user, read-only root, no capability, no privilege escalation; and
    they never restarted. (The init container is gone once it has run: its
    part is the migrated database the smoke test logs in to.)"""
    for name, container in containers(played["deployments"]).items():
        pod_context, context = container["pod"]["securityContext"], container["securityContext"]
        inspected = json.loads(podman("inspect", name).stdout)[0]
        user = f"{pod_context['runAsUser']}:{pod_context['runAsGroup']}"
        assert inspected["Config"]["User"] == user, name
        assert inspected["HostConfig"]["ReadonlyRootfs"] is context["readOnlyRootFilesystem"]
        assert not inspected["EffectiveCaps"], name
        assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"], name
        # The emptyDir takes writes; /var/tmp, which any user may write to on
        # a writable root, does not.
        written = podman("exec", name, "sh", "-c", "touch /tmp/probe && ! touch /var/tmp/probe")
        assert written.returncode == 0, (name, written.stderr)
        assert inspected["RestartCount"] == 0, name
