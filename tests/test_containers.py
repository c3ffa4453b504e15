"""The rendered container files, for every combination of answers (no engine needed)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import all_combinations, combination_id
from docker_stack import PYTHON_BASE, compose_or_skip

# The workflow switch changes no compose file or Dockerfile (test_answers.py
# shows it adds or removes only .github/), so one of its values is enough here.
COMBINATIONS = all_combinations(use_github_actions=True)
HADOLINT = Path(sys.prefix) / "bin" / "hadolint"
DOCKERFILES = ("api/Dockerfile", "worker/Dockerfile")
# Built only in a project with the monitoring stack.
FLOWER_DOCKERFILE = "monitoring/flower/Dockerfile"


@pytest.mark.parametrize("version", ["v2", "v1"])
@pytest.mark.parametrize("combination", COMBINATIONS, ids=combination_id)
def test_compose_file_is_valid(bake, combination, version):
    compose = compose_or_skip(version, engine=False)
    project = bake(**combination)
    checked = subprocess.run(
        [*compose, "config", "--quiet"], cwd=project, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("combination", COMBINATIONS, ids=combination_id)
def test_dockerfiles_pass_hadolint(bake, combination):
    project = bake(**combination)
    dockerfiles = [*DOCKERFILES, *([FLOWER_DOCKERFILE] if combination["use_monitoring"] else [])]
    linted = subprocess.run(
        [str(HADOLINT), *dockerfiles], cwd=project, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    linted = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True)
    assert linted.returncode != 0
    assert "DL3006" in linted.stdout  # the untagged image


def test_compose_keeps_to_what_v1_and_scaling_need(bake):
    compose = yaml.safe_load((bake() / "compose.yaml").read_text())
    assert "version" not in compose  # the Compose Specification has none
    services = compose["services"]
    for name, service in services.items():
        assert "container_name" not in service, name
        if name != "migrate":
            assert service.get("restart") == "unless-stopped", name
    assert [name for name, service in services.items() if "ports" in service] == ["api"]
    # The api and worker images carry their own HEALTHCHECK (the boot test waits on it).
    for name in ("postgres", "rabbitmq", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_image_defaults_agree(bake):
    """The default base and service images are written in several files; one value each."""
    project = bake()
    compose = (project / "compose.yaml").read_text()
    monitoring = (project / "compose.monitoring.yaml").read_text()
    example = (project / ".env.example").read_text()
    defaults = dict(re.findall(r"\$\{(\w+_IMAGE):-([^}]+)\}", compose + monitoring))
    assert set(defaults) == {
        *("POSTGRES_IMAGE", "RABBITMQ_IMAGE", "REDIS_IMAGE"),
        *("PROMETHEUS_IMAGE", "ALERTMANAGER_IMAGE", "GRAFANA_IMAGE"),
        *("POSTGRES_EXPORTER_IMAGE", "REDIS_EXPORTER_IMAGE"),
    }
    for name, image in defaults.items():
        assert f"# {name}={image}\n" in example, name
    # Literal FROM lines, which Dependabot reads; the boot tests provide this image.
    for dockerfile in (*DOCKERFILES, FLOWER_DOCKERFILE):
        bases = re.findall(r"^FROM (\S+)", (project / dockerfile).read_text(), re.MULTILINE)
        assert set(bases) == {PYTHON_BASE}, dockerfile


@pytest.mark.parametrize(
    ("plugin_answers", "expected"),
    [(True, "docker compose up --build --detach"), (False, "docker-compose up --build --detach")],
)
def test_make_up_picks_the_compose_that_is_installed(bake, tmp_path, plugin_answers, expected):
    """`docker compose` when the Docker CLI has the v2 plugin, else `docker-compose`."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text(f"#!/bin/sh\nexit {0 if plugin_answers else 1}\n")
    docker.chmod(0o755)
    dry_run = subprocess.run(
        ["make", "--dry-run", "up"],
        cwd=bake(),
        env={"PATH": f"{fake_bin}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout.strip() == expected
