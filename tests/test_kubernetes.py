"""The rendered Kubernetes overlays pass the published schemas, and the
schema checks refuse what a cluster would refuse. Every combination of
answers is checked too, in tests/test_render_matrix.py."""

import copy

import kubernetes_validate
import pytest
from conftest import render
from kubernetes_manifests import KUBERNETES_VERSIONS, build_overlays, schema_problems


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_overlays(render(tmp_path_factory.mktemp("render")))


def test_each_overlay_passes_the_schemas(built):
    assert set(built) == {"local", "production", "monitoring"}
    for overlay in ("local", "production"):
        kinds = {manifest["kind"] for manifest in built[overlay]}
        assert {"Deployment", "ScaledObject", "NetworkPolicy"} <= kinds, overlay
    assert sorted(m["kind"] for m in built["monitoring"]) == ["PrometheusRule", "ServiceMonitor"]
    for overlay, manifests in built.items():
        assert schema_problems(manifests) == [], overlay


def first(manifests, kind, name):
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_an_unknown_field_of_a_core_kind_is_refused(built):
    manifests = copy.deepcopy(built["production"])
    api = first(manifests, "Deployment", "api")
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["path"] = "/health"
    problems = schema_problems(manifests)
    assert len(problems) == len(KUBERNETES_VERSIONS), problems
    assert all("'path' was unexpected" in problem for problem in problems)


def test_a_field_of_a_newer_release_is_refused_for_the_oldest():
    """The oldest release checked is where the API's preStop sleep begins to be
    on by default: one release older, its schema has no such action."""
    major, minor, patch = KUBERNETES_VERSIONS[0].split(".")
    older = f"{major}.{int(minor) - 2}.{patch}"
    hook = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "image": "i:1", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}
            ]
        },
    }
    kubernetes_validate.validate(hook, KUBERNETES_VERSIONS[0], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hook, older, strict=True)


def test_a_wrong_type_in_a_scaled_object_is_refused(built):
    manifests = copy.deepcopy(built["production"])
    first(manifests, "ScaledObject", "worker")["spec"]["minReplicaCount"] = "one"
    problems = schema_problems(manifests)
    assert problems == ["ScaledObject worker: data/spec/minReplicaCount must be integer"]


def test_a_rule_without_its_expression_is_refused(built):
    """The Prometheus operator's schema reads the alert rules inside the
    PrometheusRule, and a ServiceMonitor's fields."""
    manifests = copy.deepcopy(built["monitoring"])
    del first(manifests, "PrometheusRule", "alerts")["spec"]["groups"][0]["rules"][0]["expr"]
    first(manifests, "ServiceMonitor", "api")["spec"]["endpoints"][0]["path"] = 9
    assert sorted(schema_problems(manifests)) == [
        "PrometheusRule alerts: data/spec/groups/0/rules/0 must have required property expr",
        "ServiceMonitor api: data/spec/endpoints/0/path must be string",
    ]


def test_a_custom_kind_without_a_published_schema_is_refused(built):
    manifests = copy.deepcopy(built["production"])
    manifests.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert schema_problems(manifests) == ["Widget w: no published schema for the group example.com"]
