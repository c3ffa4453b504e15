"""Monitoring on Kubernetes (deploy/kubernetes/monitoring, with the
PrometheusRule that scripts/kubernetes_rules.py writes), checked for what a
schema cannot see: the PrometheusRule carries compose's alert rules as they
are, in the service's namespace, and the ServiceMonitor scrapes the API's
metrics route through its Service, under the job the rules read. Each check is
also shown to catch a broken copy.

Built from a copy, so that the project's own prometheus-rule.yaml is neither
needed nor touched.
"""

import copy
import re
import shutil
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from app.main import create_app
from tests.kubernetes_manifests import KUBERNETES, PROJECT, SCRIPTS, Manifest, build, matches, named

# The scripts import each other as they run: from their own directory.
sys.path.append(str(SCRIPTS))
import kubernetes_rules

RULES = PROJECT / "monitoring" / "prometheus" / "alerts.yml"

Built = dict[str, list[Manifest]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed: it builds the manifests (docs/kubernetes.md)")
    tree = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns(".env.secrets"))
    rule = tree / kubernetes_rules.PROMETHEUS_RULE.relative_to(KUBERNETES)
    rule.write_text(kubernetes_rules.prometheus_rule(RULES.read_text()))
    return {"base": build(tree / "base"), "monitoring": build(tree / "monitoring")}


def namespace(manifests: list[Manifest]) -> str:
    (name,) = (m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace")
    return name


def rule_problems(built: Built) -> list[str]:
    rule, problems = named(built["monitoring"], "PrometheusRule", "alerts"), []
    if rule["spec"] != yaml.safe_load(RULES.read_text()):
        problems.append("the PrometheusRule's spec is not alerts.yml")
    if rule["metadata"]["namespace"] != namespace(built["base"]):
        problems.append(f"the PrometheusRule is in {rule['metadata']['namespace']}")
    return problems


def scrape_problems(built: Built) -> list[str]:
    problems = []
    routes = {getattr(route, "path", None) for route in create_app().routes}
    jobs_read = set(re.findall(r'job="([^"]+)"', RULES.read_text()))
    for monitor in (m for m in built["monitoring"] if m["kind"] == "ServiceMonitor"):
        name = monitor["metadata"]["name"]
        services = [
            service
            for service in built["base"]
            if service["kind"] == "Service"
            # Without a namespaceSelector, a ServiceMonitor looks in its own namespace.
            and service["metadata"]["namespace"] == monitor["metadata"]["namespace"]
            and matches(monitor["spec"]["selector"], service["metadata"]["labels"])
        ]
        if len(services) != 1:
            problems.append(f"ServiceMonitor {name} selects {len(services)} Services")
            continue
        (service,) = services
        port_names = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] not in port_names:
                problems.append(f"ServiceMonitor {name}: no port {endpoint['port']} on its Service")
            if endpoint["path"] not in routes:
                problems.append(f"ServiceMonitor {name}: the API serves no {endpoint['path']}")
        # The operator names the job after the Service, unless jobLabel names a label.
        labels: dict[str, Any] = service["metadata"]["labels"]
        job = labels.get(monitor["spec"].get("jobLabel", ""), service["metadata"]["name"])
        if job not in jobs_read:
            problems.append(f"ServiceMonitor {name}: the rules read no job {job}")
    return problems


CHECKS: dict[str, Callable[[Built], list[str]]] = {
    "rule": rule_problems,
    "scrape": scrape_problems,
}


@pytest.mark.parametrize("check", CHECKS)
def test_monitoring_passes(built: Built, check: str) -> None:
    assert CHECKS[check](built) == []


def rule(built: Built) -> Manifest:
    return named(built["monitoring"], "PrometheusRule", "alerts")


def api_monitor(built: Built) -> Manifest:
    return named(built["monitoring"], "ServiceMonitor", "api")


BREAKS: list[tuple[str, str, Callable[[Built], None]]] = [
    ("rule", "a rule lost", lambda b: rule(b)["spec"]["groups"][0]["rules"].pop()),
    ("rule", "another namespace", lambda b: rule(b)["metadata"].update(namespace="default")),
    (
        "scrape",
        "the workers selected",
        lambda b: api_monitor(b)["spec"]["selector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "worker"}
        ),
    ),
    (
        "scrape",
        "a port by number",
        lambda b: api_monitor(b)["spec"]["endpoints"][0].update(port="8000"),
    ),
    (
        "scrape",
        "another path",
        lambda b: api_monitor(b)["spec"]["endpoints"][0].update(path="/api/v1/metrics"),
    ),
    (
        "scrape",
        "a job the rules do not read",
        lambda b: named(b["base"], "Service", "api")["metadata"].update(name="api-http"),
    ),
]


@pytest.mark.parametrize(("check", "what", "breaking"), BREAKS, ids=[b[1] for b in BREAKS])
def test_check_catches_a_broken_copy(
    built: Built, check: str, what: str, breaking: Callable[[Built], None]
) -> None:
    broken = copy.deepcopy(built)
    breaking(broken)
    assert CHECKS[check](broken), what


def test_every_check_is_shown_to_catch_a_break() -> None:
    assert {check for check, _, _ in BREAKS} == set(CHECKS)


def test_the_rule_keeps_every_line_of_the_rules() -> None:
    """Blank lines of a block scalar, a line without its newline: as they were."""
    rules = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: |\n          up\n  \n          == 1"
    written = yaml.safe_load(kubernetes_rules.prometheus_rule(rules))
    assert written["spec"] == yaml.safe_load(rules)
