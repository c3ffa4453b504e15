"""Check a running stack from the outside, as a client would: `make smoke`.

Waits for the API to be ready (PostgreSQL, RabbitMQ and Redis reachable), logs
in as the first superuser of .env, and runs one waiting echo task (the task
every render has) through a worker,
again until SMOKE_TIMEOUT while no worker has started yet. It suits a CI job
after `make up`, and works against `make api` and `make worker` too. Standard
library only, so that it runs without the project's virtual environment.
Settings come from the environment, else from .env.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ENV_FILE = Path(__file__).resolve().parents[1] / ".env"
# Answers that a stack still starting gives: no worker yet (504), or a
# dependency not reachable yet (503).
NOT_YET = (503, 504)
# The echo task's route, ECHO_PATH in api/app/api/v1/private/tasks.py: written
# out here, because this script runs without the project's code.
ECHO_PATH = "/api/v1/tasks/echo"
TEXT = "smoke test"


class SmokeFailure(Exception):
    """What went wrong, in one line for the user."""


def env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """.env's values as Compose reads them: `export` allowed, quotes removed,
    a comment after an unquoted value dropped, the last of two lines wins."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        name, sign, value = line.partition("=")
        if not sign or line.startswith("#"):
            continue
        value = value.strip()
        quote = value[:1]
        if quote in ("'", '"') and value.find(quote, 1) > 0:
            value = value[1 : value.find(quote, 1)]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[name.strip()] = value
    return values


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, env_file().get(name, default))
    if value is None:
        raise SmokeFailure(f"{name} is set neither in the environment nor in .env")
    return value


def call(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, body) of one request: the body decoded from JSON, else its text.
    A connection that fails raises OSError."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")[:200]


def wait_until_ready(base: str, deadline: float) -> None:
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status, body = call("GET", f"{base}/api/v1/health/ready")
            if status == 200:
                return
            last = f"{status} {body}"
        except OSError as error:  # not listening yet
            last = str(error)
        time.sleep(1)
    raise SmokeFailure(f"{base} was not ready within {setting('SMOKE_TIMEOUT', '180')} s: {last}")


def log_in(base: str) -> str:
    form = {
        "username": setting("FIRST_SUPERUSER_EMAIL"),
        "password": setting("FIRST_SUPERUSER_PASSWORD"),
    }
    status, body = call(
        "POST", f"{base}/api/v1/auth/token", data=urllib.parse.urlencode(form).encode()
    )
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise SmokeFailure(f"login as the first superuser got {status}: {body}")
    token: str = body["access_token"]
    return token


def run_task(base: str, token: str, deadline: float) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = base + ECHO_PATH
    while True:
        status, body = call("POST", url, data=json.dumps({"text": TEXT}).encode(), headers=headers)
        if status not in NOT_YET or time.monotonic() > deadline:
            break
        time.sleep(1)
    answer = (body.get("status"), body.get("result")) if isinstance(body, dict) else None
    if (status, answer) != (200, ("SUCCESS", TEXT)):
        raise SmokeFailure(f"a waiting task got {status}: {body}")


def main() -> int:
    try:
        base = f"http://127.0.0.1:{setting('API_PORT', '8000')}"
        deadline = time.monotonic() + float(setting("SMOKE_TIMEOUT", "180"))
        wait_until_ready(base, deadline)
        print(f"smoke test: {base} is ready")
        token = log_in(base)
        print("smoke test: logged in as the first superuser")
        run_task(base, token, deadline)
        print(f"smoke test: a task ran through a worker and came back: echo {TEXT!r}")
    except (SmokeFailure, OSError) as failure:
        print(f"smoke test: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
