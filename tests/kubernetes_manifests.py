"""A render's Kubernetes manifests, built with `kubectl kustomize` (the alert
rules' PrometheusRule written by scripts/kubernetes_rules.py first) and checked against the
published schemas: the core kinds strictly (unknown fields refused) by
kubernetes-validate for the oldest and the newest Kubernetes release the
render supports, KEDA's and the Prometheus operator's kinds by their npm
models (tests/kubernetes), which accept unknown fields. The render's own tests
(api/tests/test_kubernetes.py, test_kubernetes_monitoring.py) check what a
schema cannot see.
"""

import functools
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

# The oldest supported release is the first where the API's preStop `sleep`
# action is on by default (beta in 1.30).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
OVERLAYS = ("local", "production")
CUSTOM_CHECKER = Path(__file__).parent / "kubernetes" / "validate_custom_resources.mjs"


def build_overlays(project: Path) -> dict[str, list[dict]]:
    """Each overlay of the render, built (the local one's Secret written from
    .env first, as `make kubernetes-secrets` does); and, with monitoring, what
    `make kubernetes-monitoring` applies."""
    run_in(project, sys.executable, "scripts/kubernetes_secrets.py", "local")
    built = {
        overlay: manifests(
            run_in(project, "kubectl", "kustomize", f"deploy/kubernetes/overlays/{overlay}")
        )
        for overlay in OVERLAYS
    }
    if (project / "deploy/kubernetes/monitoring").exists():
        run_in(project, sys.executable, "scripts/kubernetes_rules.py")
        built["monitoring"] = manifests(
            run_in(project, "kubectl", "kustomize", "deploy/kubernetes/monitoring")
        )
    return built


def run_in(project: Path, *command: str) -> str:
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout


def manifests(text: str) -> list[dict]:
    # libyaml's loader where PyYAML has it: the pure-Python one is slow here.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [manifest for manifest in yaml.load_all(text, Loader=loader) if manifest]


def schema_problems(manifests: list[dict]) -> list[str]:
    # The same manifests come out of many renders: each set is checked once.
    return list(checked(json.dumps(manifests, sort_keys=True)))


@functools.cache
def checked(manifests_json: str) -> tuple[str, ...]:
    problems = []
    custom = []
    for manifest in json.loads(manifests_json):
        name = f"{manifest['kind']} {manifest['metadata']['name']}"
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                custom.append(manifest)
                break
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{name} on Kubernetes {version}: {error.message}")
    if custom:
        result = subprocess.run(
            ["node", str(CUSTOM_CHECKER)],
            input=json.dumps(custom),
            capture_output=True,
            text=True,
        )
        problems += result.stdout.splitlines()
        if result.returncode and not result.stdout:
            problems.append(f"{CUSTOM_CHECKER.name} failed: {result.stderr}")
    return tuple(problems)
