"""The Kubernetes manifests (deploy/kubernetes), as `kubectl kustomize` builds
each overlay, checked for what a schema cannot see: that the parts name each
other right and agree with the code. Each check is also shown to catch a
broken copy.

The local overlay is built from a copy whose Secret file is written from
.env.example with fresh secrets (as `make env` writes .env), so that the
project's own .env.secrets is neither needed nor touched.
"""

import copy
import importlib.util
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.core.config import Settings as ApiSettings
from tests.kubernetes_manifests import (
    KUBERNETES,
    PROJECT,
    SCRIPTS,
    Manifest,
    build,
    matches,
    named,
    of_kind,
)


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OVERLAYS = ("local", "production")
# The API knows the worker by its task names only, never by importing it: the
# worker's settings are read from their file (pydantic-settings alone).
WorkerSettings = load_module(PROJECT / "worker" / "worker" / "config.py").Settings
# What the containers of the service read besides its settings: the API
# image's directory of multiprocess metrics, read by prometheus_client.
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}
WORKLOADS = ("Deployment", "StatefulSet")
# The workers' queues when WORKER_CONSUMES is short or long.
QUEUES = {
    "short": WorkerSettings.model_fields["CELERY_TASK_QUEUE"].default,
    "long": WorkerSettings.model_fields["CELERY_LONG_TASK_QUEUE"].default,
}

# The scripts import each other as they run: from their own directory.
sys.path.append(str(SCRIPTS))
import kubernetes_secrets  # noqa: E402
from smoke_test import env_file  # noqa: E402
from write_env import PLACEHOLDER  # noqa: E402

# The Secret's values: those of .env.example, each placeholder a fresh secret.
SECRETS = kubernetes_secrets.local_secrets(
    {
        key: PLACEHOLDER.sub(lambda _: secrets.token_urlsafe(32), value)
        for key, value in env_file(PROJECT / ".env.example").items()
    }
)
# Who must reach whom in the local overlay, on which of the server's ports.
CONNECTIONS = [
    ("api", "postgres", "postgres"),
    ("api", "rabbitmq", "amqp"),
    ("api", "redis", "redis"),
    ("worker", "rabbitmq", "amqp"),
    ("worker", "redis", "redis"),
    ("worker-long", "rabbitmq", "amqp"),
    ("worker-long", "redis", "redis"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed: it builds the overlays (docs/kubernetes.md)")
    tree = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns(".env.secrets"))
    (tree / "overlays/local/.env.secrets").write_text(kubernetes_secrets.env_lines(SECRETS))
    return {overlay: build(tree / "overlays" / overlay) for overlay in OVERLAYS}


def pod_labels(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {
        workload["metadata"]["name"]: workload["spec"]["template"]["metadata"]["labels"]
        for workload in of_kind(manifests, *WORKLOADS)
    }


def containers(workload: Manifest) -> list[Manifest]:
    pod = workload["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def is_ours(workload: Manifest) -> bool:
    """The API and the workers (the local overlay's services run images of their own)."""
    return any(
        image_name(container["image"]).endswith(("-api", "-worker"))
        for container in containers(workload)
    )


def image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":")[0]


def env_names(container: Manifest) -> list[str]:
    return [variable["name"] for variable in container.get("env", [])]


def worker_queue(workload: Manifest) -> str:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    values = {v["name"]: v.get("value") for v in container.get("env", [])}
    return QUEUES[values.get("WORKER_CONSUMES", "short")]


# The checks: each returns what is wrong, nothing when all is right.


def selector_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    pods = pod_labels(manifests)
    for workload in of_kind(manifests, *WORKLOADS):
        name = workload["metadata"]["name"]
        if not matches(workload["spec"]["selector"], pods[name]):
            problems.append(f"{workload['kind']} {name}'s selector misses its own pods")
    for manifest in of_kind(manifests, "Service", "PodDisruptionBudget"):
        selector = manifest["spec"]["selector"]
        if manifest["kind"] == "Service":
            selector = {"matchLabels": selector}
        if not any(matches(selector, labels) for labels in pods.values()):
            problems.append(f"{manifest['kind']} {manifest['metadata']['name']} selects no pod")
    for policy in of_kind(manifests, "NetworkPolicy"):
        selectors = [policy["spec"]["podSelector"]] + [
            peer["podSelector"]
            for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
            for peer in rule.get("from", []) + rule.get("to", [])
            if "podSelector" in peer and "namespaceSelector" not in peer
        ]
        for selector in selectors:
            if not any(matches(selector, labels) for labels in pods.values()):
                problems.append(f"NetworkPolicy {policy['metadata']['name']} selects no pod")
    deployments = {d["metadata"]["name"] for d in of_kind(manifests, "Deployment")}
    for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        if autoscaler["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"HPA {autoscaler['metadata']['name']} scales no Deployment")
    return problems


def port_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    pods = pod_labels(manifests)
    ports_of = {
        workload["metadata"]["name"]: {
            port["name"]
            for container in containers(workload)
            for port in container.get("ports", [])
        }
        for workload in of_kind(manifests, *WORKLOADS)
    }
    for service in of_kind(manifests, "Service"):
        targets = [
            name
            for name, labels in pods.items()
            if matches({"matchLabels": service["spec"]["selector"]}, labels)
        ]
        for port in service["spec"]["ports"]:
            if not isinstance(port.get("targetPort"), str):
                problems.append(f"Service {service['metadata']['name']} targets a port by number")
            elif not all(port["targetPort"] in ports_of[target] for target in targets):
                problems.append(
                    f"Service {service['metadata']['name']} targets {port['targetPort']}, "
                    "which its pods do not name"
                )
    for workload in of_kind(manifests, *WORKLOADS):
        for container in containers(workload):
            for probe in ("readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports_of[workload["metadata"]["name"]]:
                    problems.append(f"{container['name']}'s {probe} asks port {port}, not named")
    return problems


def allows(
    rules: list[Manifest], peer_labels: dict[str, str] | None, port: tuple[object, ...]
) -> bool:
    """Whether one of a policy's rules lets this traffic through: from or to a
    pod with these labels in the namespace (None: anywhere), on this port."""
    for rule in rules:
        peers = rule.get("from", rule.get("to", []))
        peer_ok = not peers or any(
            "podSelector" in peer
            and "namespaceSelector" not in peer
            and peer_labels is not None
            and matches(peer["podSelector"], peer_labels)
            for peer in peers
        )
        ports = rule.get("ports", [])
        if peer_ok and (not ports or any(p.get("port") in port for p in ports)):
            return True
    return False


def connection_problems(manifests: list[Manifest], overlay: str) -> list[str]:
    """In the local overlay, each client reaches each of its services: a
    policy on the client lets it out, one on the service lets it in."""
    if overlay != "local":
        return []
    problems = []
    pods = pod_labels(manifests)
    workloads = {w["metadata"]["name"]: w for w in of_kind(manifests, *WORKLOADS)}
    policies = list(of_kind(manifests, "NetworkPolicy"))

    def applying(direction: str, pod: str) -> list[Manifest]:
        return [
            policy
            for policy in policies
            if direction in policy["spec"]["policyTypes"]
            and matches(policy["spec"]["podSelector"], pods[pod])
        ]

    for client, server, port_name in CONNECTIONS:
        (number,) = [
            port["containerPort"]
            for container in containers(workloads[server])
            for port in container.get("ports", [])
            if port["name"] == port_name
        ]
        if not any(
            allows(p["spec"].get("egress", []), None, (number,)) for p in applying("Egress", client)
        ):
            problems.append(f"{client} may not connect out to {server}:{number}")
        into = applying("Ingress", server)
        if not any(
            allows(p["spec"].get("ingress", []), pods[client], (port_name, number)) for p in into
        ):
            problems.append(f"{server} does not let {client} in on {port_name}")
    return problems


def from_these_only(settings: type[BaseSettings]) -> type[BaseSettings]:
    """The settings class reading only what it is given: not the environment of
    the tests, nor .env."""

    class Given(settings):  # type: ignore[misc, valid-type]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            **others: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    return Given


def container_environment(container: Manifest) -> dict[str, str]:
    """A container's variables, those of the Secret with its values."""
    return {
        variable["name"]: variable["value"]
        if "value" in variable
        else SECRETS.get(variable["valueFrom"]["secretKeyRef"]["key"], "")
        for variable in container.get("env", [])
    }


def setting_problems(manifests: list[Manifest]) -> list[str]:
    """Every variable a container is given is a setting its service reads, and
    the service starts with what it is given (the API refuses to start without
    its secrets in production)."""
    problems = []
    for workload in filter(is_ours, of_kind(manifests, *WORKLOADS)):
        for container in containers(workload):
            api = image_name(container["image"]).endswith("-api")
            settings = ApiSettings if api else WorkerSettings
            for name in env_names(container):
                if name not in settings.model_fields and name not in NOT_SETTINGS:
                    problems.append(f"{container['name']} is given {name}, which it does not read")
            try:
                from_these_only(settings)(**container_environment(container))
            except ValidationError as error:
                problems.append(f"{container['name']} would not start: {error}")
    return problems


def secret_problems(manifests: list[Manifest], overlay: str) -> list[str]:
    """Every key the pods and KEDA take from the Secret is one that
    scripts/kubernetes_secrets.py writes for this overlay."""
    provided = set(kubernetes_secrets.SECRET_KEYS)
    if overlay == "local":
        provided |= set(kubernetes_secrets.LOCAL_SERVICE_KEYS)
    references = [
        variable["valueFrom"]["secretKeyRef"]
        for workload in of_kind(manifests, *WORKLOADS)
        for container in containers(workload)
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    ] + [
        reference
        for authentication in of_kind(manifests, "TriggerAuthentication")
        for reference in authentication["spec"]["secretTargetRef"]
    ]
    problems = [
        f"the Secret {reference['name']} has no key {reference['key']}"
        for reference in references
        if reference["name"] != "app-secrets" or reference["key"] not in provided
    ]
    if overlay == "local":
        # The overlay makes the Secret itself, from .env.secrets.
        made = [s for s in of_kind(manifests, "Secret") if s["metadata"]["name"] == "app-secrets"]
        if not made:
            problems.append("the local overlay makes no Secret app-secrets")
        elif provided - set(made[0].get("data", {})):
            problems.append(f"app-secrets lacks {sorted(provided - set(made[0]['data']))}")
    return problems


def grace_problems(manifests: list[Manifest]) -> list[str]:
    """Pods outlast what they finish on SIGTERM: the API its requests in flight
    after the preStop pause, a worker its running tasks."""
    problems = []
    shutdown = ApiSettings.model_fields["API_SHUTDOWN_TIMEOUT"].default
    time_limit = WorkerSettings.model_fields["TASK_TIME_LIMIT"].default
    for workload in filter(is_ours, of_kind(manifests, "Deployment")):
        pod = workload["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for container in pod["containers"]:
            pause = (
                container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            )
            api = image_name(container["image"]).endswith("-api")
            needed = pause + shutdown if api else time_limit
            if grace <= needed:
                problems.append(
                    f"{workload['metadata']['name']} may be killed after {grace} s, not above {needed}"
                )
    return problems


def hardening_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    for workload in of_kind(manifests, *WORKLOADS):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True or not context.get("runAsUser"):
            problems.append(f"{name} may run as root")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name} runs without the runtime's seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name} mounts a service account token")
        for container in containers(workload):
            context = container.get("securityContext", {})
            where = f"{name}'s container {container['name']}"
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where} may escalate privileges")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where} may write its root filesystem")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where} keeps capabilities")
            if not re.search(r":[\w][\w.-]*$", container["image"]) or container["image"].endswith(
                ":latest"
            ):
                problems.append(f"{where} runs {container['image']}, not a release's tag")
            resources = container.get("resources", {})
            if (
                not {"cpu", "memory"}
                <= resources.get("requests", {}).keys() & resources.get("limits", {}).keys()
            ):
                problems.append(f"{where} lacks CPU and memory requests and limits")
    return problems


def scaler_problems(manifests: list[Manifest]) -> list[str]:
    """Each worker Deployment has one ScaledObject, on the queue it consumes."""
    problems = []
    workers = {
        workload["metadata"]["name"]: workload
        for workload in of_kind(manifests, "Deployment")
        if image_name(containers(workload)[0]["image"]).endswith("-worker")
    }
    authentications = {a["metadata"]["name"] for a in of_kind(manifests, "TriggerAuthentication")}
    scaled = []
    for scaler in of_kind(manifests, "ScaledObject"):
        name = scaler["metadata"]["name"]
        target = scaler["spec"]["scaleTargetRef"]["name"]
        scaled.append(target)
        if target not in workers:
            problems.append(f"ScaledObject {name} scales {target}, no worker")
            continue
        for trigger in scaler["spec"]["triggers"]:
            queue = trigger["metadata"].get("queueName")
            if queue != worker_queue(workers[target]):
                problems.append(f"ScaledObject {name} counts {queue}, not {target}'s queue")
            if trigger["metadata"].get("protocol") != "http":
                problems.append(f"ScaledObject {name} would not count the tasks running")
            if trigger.get("authenticationRef", {}).get("name") not in authentications:
                problems.append(f"ScaledObject {name} names no TriggerAuthentication")
    for worker in workers:
        if scaled.count(worker) != 1:
            problems.append(f"{worker} has {scaled.count(worker)} ScaledObjects")
    return problems


CHECKS: dict[str, Callable[[list[Manifest], str], list[str]]] = {
    "selectors": lambda manifests, overlay: selector_problems(manifests),
    "ports": lambda manifests, overlay: port_problems(manifests),
    "settings": lambda manifests, overlay: setting_problems(manifests),
    "secrets": secret_problems,
    "grace periods": lambda manifests, overlay: grace_problems(manifests),
    "hardening": lambda manifests, overlay: hardening_problems(manifests),
    "scalers": lambda manifests, overlay: scaler_problems(manifests),
    "connections": connection_problems,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", CHECKS)
def test_overlay_passes(built, overlay, check):
    assert CHECKS[check](built[overlay], overlay) == []


def api_pod(manifests: list[Manifest]) -> Manifest:
    return named(manifests, "Deployment", "api")["spec"]["template"]["spec"]


def long_worker(manifests: list[Manifest]) -> Manifest:
    return named(manifests, "Deployment", "worker-long")["spec"]["template"]["spec"]["containers"][
        0
    ]


# Breaks of the kind an edit makes: (check, overlay, what, the break).
BREAKS: list[tuple[str, str, str, Callable[[list[Manifest]], None]]] = [
    (
        "selectors",
        "production",
        "a Service that selects no pod",
        lambda m: named(m, "Service", "api")["spec"]["selector"].update(
            {"app.kubernetes.io/component": "apí"}
        ),
    ),
    (
        "ports",
        "production",
        "a port renamed",
        lambda m: api_pod(m)["containers"][0]["ports"][0].update(name="web"),
    ),
    (
        "settings",
        "production",
        "a misspelt setting",
        lambda m: api_pod(m)["containers"][0]["env"].append(
            {"name": "TASK_WAIT_TIMEOUTS", "value": "5"}
        ),
    ),
    (
        "settings",
        "production",
        "no SECRET_KEY",
        lambda m: drop_variable(api_pod(m)["containers"][0], "SECRET_KEY"),
    ),
    (
        "settings",
        "local",
        "a value refused",
        lambda m: long_worker(m)["env"][-1].update(value="longest"),
    ),
    (
        "secrets",
        "production",
        "a key the Secret lacks",
        lambda m: api_pod(m)["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"].update(
            key="DATABASE_URL"
        ),
    ),
    ("secrets", "local", "no Secret made", lambda m: m.remove(named(m, "Secret", "app-secrets"))),
    (
        "grace periods",
        "production",
        "too short",
        lambda m: api_pod(m).update(terminationGracePeriodSeconds=20),
    ),
    (
        "hardening",
        "production",
        "a writable root filesystem",
        lambda m: api_pod(m)["initContainers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
    ),
    (
        "hardening",
        "local",
        "root allowed",
        lambda m: named(m, "StatefulSet", "redis")["spec"]["template"]["spec"][
            "securityContext"
        ].pop("runAsNonRoot"),
    ),
    (
        "scalers",
        "production",
        "the long worker on the short queue",
        lambda m: drop_variable(long_worker(m), "WORKER_CONSUMES"),
    ),
    (
        "connections",
        "local",
        "the API left out of the broker's policy",
        lambda m: named(m, "NetworkPolicy", "rabbitmq")["spec"]["ingress"][0]["from"][0][
            "podSelector"
        ]["matchExpressions"][0]["values"].remove("api"),
    ),
    (
        "connections",
        "local",
        "the workers' way out to Redis closed",
        lambda m: named(m, "NetworkPolicy", "workers")["spec"]["egress"][0]["ports"].pop(),
    ),
]


def drop_variable(container: Manifest, name: str) -> None:
    container["env"] = [variable for variable in container["env"] if variable["name"] != name]


@pytest.mark.parametrize(
    ("check", "overlay", "what", "breaking"), BREAKS, ids=[b[2] for b in BREAKS]
)
def test_check_catches_a_broken_copy(built, check, overlay, what, breaking):
    broken = copy.deepcopy(built[overlay])
    breaking(broken)
    assert CHECKS[check](broken, overlay) != []


def test_every_check_is_shown_to_catch_a_break():
    assert {check for check, *_ in BREAKS} == set(CHECKS)


def test_local_secrets_reach_the_overlay_services(built):
    """The local overlay's URLs name its own services, with their passwords;
    KEDA, in a namespace of its own, reaches RabbitMQ by its full name."""
    services = {service["metadata"]["name"] for service in of_kind(built["local"], "Service")}
    assert {"postgres", "rabbitmq", "redis"} <= services
    (namespace,) = [n["metadata"]["name"] for n in of_kind(built["local"], "Namespace")]
    assert f":{SECRETS['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672//" in SECRETS["CELERY_BROKER_URL"]
    assert SECRETS["RABBITMQ_MANAGEMENT_URL"].endswith(f"@rabbitmq.{namespace}.svc:15672/%2F")
    assert f":{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/" in SECRETS["POSTGRES_DATABASE_URL"]
    assert f":{SECRETS['REDIS_PASSWORD']}@redis:6379/0" in SECRETS["CELERY_RESULT_BACKEND_URL"]
