"""The rendered container files, for every combination of answers (no engine needed)."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import all_combinations, combination_id
from docker_stack import PYTHON_BASE, compose_clis, compose_or_skip

# The workflow and Kubernetes switches change no compose file or Dockerfile
# (test_answers.py shows each adds or removes only its own files), so one of
# their values is enough here.
COMBINATIONS = all_combinations(use_github_actions=True, use_kubernetes=True)
HADOLINT = Path(sys.prefix) / "bin" / "hadolint"
# One Dockerfile at the project's root, built from there, with a target per
# service image; and Flower's, built only in a project with the monitoring stack.
SERVICE_DOCKERFILE = "Dockerfile"
FLOWER_DOCKERFILE = "monitoring/flower/Dockerfile"
# Each service's directory, by the target of its image, and the compose
# services that run that image.
TARGETS = {"api": "api", "worker": "worker"}
IMAGE_USERS = {"migrate": "api", "api": "api", "worker": "worker", "worker-long": "worker"}


def dockerfile_stages(text: str) -> list[dict]:
    """Each stage of a Dockerfile in order: its name, what its FROM names, and
    its instructions as (keyword, arguments), continued lines joined."""
    stages: list[dict] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append({"name": name.strip(), "from": base.strip(), "instructions": []})
        else:
            stages[-1]["instructions"].append((keyword, arguments.strip()))
    return stages


def stage_chain(stages: list[dict], name: str) -> list[dict]:
    """The stage with that name and the stages it starts from, the first one first."""
    by_name = {stage["name"]: stage for stage in stages}
    chain = [by_name[name]]
    while chain[0]["from"] in by_name:
        chain.insert(0, by_name[chain[0]["from"]])
    return chain


def instructions(chain: list[dict], keyword: str) -> list[str]:
    return [args for stage in chain for key, args in stage["instructions"] if key == keyword]


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
    flower = [FLOWER_DOCKERFILE] if combination["use_monitoring"] else []
    linted = subprocess.run(
        [str(HADOLINT), SERVICE_DOCKERFILE, *flower], cwd=project, capture_output=True, text=True
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


def test_the_cluster_overlay_gives_every_broker_client_the_three_nodes(bake):
    """compose.cluster.yaml over compose.yaml, as Compose merges them (`config`,
    no engine needed): three nodes sharing the cookie, each with its data and
    the cluster's configuration; the API and the workers know the three and
    wait for them."""
    project = bake()
    v2 = compose_clis().get("v2")
    if v2 is None:
        pytest.skip("no Compose v2 to merge the files")
    merged = subprocess.run(
        [*v2, "-f", "compose.yaml", "-f", "compose.cluster.yaml", "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    services = json.loads(merged.stdout)["services"]
    nodes = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
    cookie = read_env(project, "RABBITMQ_ERLANG_COOKIE")
    assert len(cookie) >= 32
    for node in nodes:
        service = services[node]
        assert service["hostname"] == node
        assert service["environment"]["RABBITMQ_ERLANG_COOKIE"] == cookie, node
        assert service["healthcheck"]["test"], node
        assert service["restart"] == "unless-stopped", node
        mounts = {mount["target"]: mount for mount in service["volumes"]}
        assert mounts["/var/lib/rabbitmq"]["type"] == "volume", node
        assert mounts["/etc/rabbitmq/conf.d/90-cluster.conf"]["read_only"], node
    assert len({services[node]["volumes"][0]["source"] for node in nodes}) == 3
    assert len({services[node]["image"] for node in nodes}) == 1
    user, password = (read_env(project, f"RABBITMQ_DEFAULT_{part}") for part in ("USER", "PASS"))
    urls = ";".join(f"amqp://{user}:{password}@{node}:5672//" for node in nodes)
    for client in ("api", "worker", "worker-long"):
        assert services[client]["environment"]["CELERY_BROKER_URL"] == urls, client
        assert {node: "service_healthy" for node in nodes}.items() <= {
            name: wait["condition"] for name, wait in services[client]["depends_on"].items()
        }.items(), client
    listed = (project / "rabbitmq" / "cluster.conf").read_text()
    assert [f"rabbit@{node}" for node in nodes] == re.findall(r"= (rabbit@\S+)", listed)


def read_env(project, name):
    (value,) = re.findall(rf"^{name}=(.*)$", (project / ".env").read_text(), re.MULTILINE)
    return value


def test_image_defaults_agree(bake):
    """The default service images are written in the compose files and in
    docs/settings.md; one value each."""
    project = bake()
    compose = (project / "compose.yaml").read_text()
    monitoring = (project / "compose.monitoring.yaml").read_text()
    documented = (project / "docs" / "settings.md").read_text()
    defaults = dict(re.findall(r"\$\{(\w+_IMAGE):-([^}]+)\}", compose + monitoring))
    assert set(defaults) == {
        *("POSTGRES_IMAGE", "RABBITMQ_IMAGE", "REDIS_IMAGE"),
        *("PROMETHEUS_IMAGE", "ALERTMANAGER_IMAGE", "GRAFANA_IMAGE"),
        *("POSTGRES_EXPORTER_IMAGE", "REDIS_EXPORTER_IMAGE"),
    }
    for name, image in defaults.items():
        assert f"| `{name}` | compose | `{image}` |" in documented, name


def test_dockerfiles_name_their_base_literally(bake):
    """Literal FROM lines, which Dependabot reads (it skips those that name an
    earlier stage); the boot tests provide this image."""
    project = bake()
    for dockerfile in (SERVICE_DOCKERFILE, FLOWER_DOCKERFILE):
        stages = dockerfile_stages((project / dockerfile).read_text())
        names = [stage["name"] for stage in stages]
        images = {stage["from"] for i, stage in enumerate(stages) if stage["from"] not in names[:i]}
        assert images == {PYTHON_BASE}, dockerfile


@pytest.mark.parametrize("monitoring", [True, False])
def test_every_image_is_built_from_a_dockerfile_and_target_that_exist(bake, monitoring):
    project = bake(use_monitoring=monitoring)
    builds = {}
    for name in ("compose.yaml", "compose.monitoring.yaml"):
        if (project / name).exists():
            services = yaml.safe_load((project / name).read_text())["services"]
            builds |= {service: s["build"] for service, s in services.items() if "build" in s}
    assert set(builds) == {*IMAGE_USERS, *(["flower"] if monitoring else [])}
    for service, target in IMAGE_USERS.items():
        assert builds[service] == {"context": ".", "target": target}, service
    for service, build in builds.items():
        dockerfile = project / build["context"] / build.get("dockerfile", "Dockerfile")
        names = [stage["name"] for stage in dockerfile_stages(dockerfile.read_text())]
        assert build.get("target", names[-1]) in names, service
    # `docker build .` without a target builds the API, the last stage.
    stages = dockerfile_stages((project / SERVICE_DOCKERFILE).read_text())
    assert stages[-1]["name"] == "api"


def test_each_image_keeps_what_it_runs_with(bake):
    """Both images run as the numeric user 10001 with the same environment, and
    each has its own health check and command; the API's metrics directory."""
    stages = dockerfile_stages((bake(worker_name="billing-jobs") / SERVICE_DOCKERFILE).read_text())
    expected = {
        "api": ('CMD ["python", "-m", "commands.healthcheck"]', '"commands.serve"'),
        "worker": ('CMD ["sh", "healthcheck.sh", "--ready"]', '"billing-jobs@%h"'),
    }
    for target, (healthcheck, command) in expected.items():
        chain = stage_chain(stages, target)
        assert chain[0]["from"] == PYTHON_BASE
        assert instructions(chain, "USER")[-1] == "10001:10001", target
        assert "--uid 10001" in " ".join(instructions(chain, "RUN")), target
        environment = " ".join(instructions(chain, "ENV"))
        assert "PYTHONDONTWRITEBYTECODE=1" in environment, target
        assert "PYTHONUNBUFFERED=1" in environment, target
        assert ("PROMETHEUS_MULTIPROC_DIR=" in environment) == (target == "api")
        (check,) = instructions(chain, "HEALTHCHECK")
        assert check.endswith(healthcheck), target
        (cmd,) = instructions(chain, "CMD")
        assert command in cmd, target


def test_each_image_gets_its_packages_and_dependencies_and_nothing_else(bake):
    """Each image copies its service's directory, of which .dockerignore lets
    through the packages that its pyproject.toml ships, the worker's healthcheck
    script and nothing else (no .env, no tests); the stages that install
    dependencies copy no code, so an edit of the code never installs them again."""
    project = bake()
    stages = dockerfile_stages((project / SERVICE_DOCKERFILE).read_text())
    ignored = [
        line
        for line in (project / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignored[0] == "*"  # everything out but what is let through
    assert {"**/.env", "**/.env.*", "**/tests"} <= set(ignored)
    for target, directory in TARGETS.items():
        pyproject = tomllib.loads((project / directory / "pyproject.toml").read_text())
        packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        copies = instructions([stage_chain(stages, target)[-1]], "COPY")
        assert f"{directory}/ ./" in copies, target
        for package in packages:
            assert f"!{directory}/{package}/" in ignored, (target, package)
    assert "!worker/healthcheck.sh" in ignored
    targets = set(TARGETS)
    for stage in stages:
        if stage["name"] in targets:
            continue
        for copy in instructions([stage], "COPY"):
            assert copy.startswith("--from=") or copy.split()[0].endswith("pyproject.toml"), copy


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
