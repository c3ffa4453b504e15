"""What the tests of the Kubernetes manifests share: the manifests as
`kubectl kustomize` builds them, and how their parts find each other."""

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
KUBERNETES = PROJECT / "deploy" / "kubernetes"
SCRIPTS = PROJECT / "scripts"

Manifest = dict[str, Any]


def build(directory: Path) -> list[Manifest]:
    output = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    return [manifest for manifest in yaml.safe_load_all(output) if manifest]


def of_kind(manifests: list[Manifest], *kinds: str) -> Iterator[Manifest]:
    return (manifest for manifest in manifests if manifest["kind"] in kinds)


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (manifest,) = (m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name)
    return manifest


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    operators = {
        "In": lambda key, values: labels.get(key) in values,
        "NotIn": lambda key, values: labels.get(key) not in values,
        "Exists": lambda key, values: key in labels,
        "DoesNotExist": lambda key, values: key not in labels,
    }
    return all(
        operators[expression["operator"]](expression["key"], expression.get("values", []))
        for expression in selector.get("matchExpressions", [])
    )
