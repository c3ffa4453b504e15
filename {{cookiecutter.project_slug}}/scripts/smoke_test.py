"""Check a running stack from the outside, as a client would: `make smoke`.

Waits for the API to be ready (PostgreSQL, RabbitMQ and Redis reachable), logs
in as the first superuser of .env, and runs one waiting task through a worker.
CI runs it after `make up`; it works against `make api` and `make worker` too.
Standard library only, so that it runs without the project's virtual
environment. Settings come from the environment, else from .env.
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


def setting(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, sign, value = line.partition("=")
            if sign and key.strip() == name:
                return value.strip()
    if default is None:
        raise SystemExit(f"smoke test: {name} is set neither in the environment nor in .env")
    return default


def call(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request; a connection failure raises OSError."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_until_ready(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status, body = call("GET", f"{base}/api/v1/health/ready")
            if status == 200:
                return
            last = f"{status} {body}"
        except (OSError, ValueError) as error:  # not listening yet, or not JSON yet
            last = str(error)
        time.sleep(1)
    raise SystemExit(f"smoke test: {base} was not ready within {timeout:.0f} s: {last}")


def log_in(base: str) -> str:
    form = urllib.parse.urlencode(
        {
            "username": setting("FIRST_SUPERUSER_EMAIL"),
            "password": setting("FIRST_SUPERUSER_PASSWORD"),
        }
    ).encode()
    status, body = call("POST", f"{base}/api/v1/auth/token", data=form)
    if status != 200:
        raise SystemExit(f"smoke test: login as the first superuser got {status}: {body}")
    token: str = body["access_token"]
    return token


def run_task(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps({"integer": 21}).encode()
    url = f"{base}/api/v1/tasks/integer-multiplication"
    status, body = call("POST", url, data=data, headers=headers)
    if (status, body.get("status"), body.get("result")) != (200, "SUCCESS", 42):
        raise SystemExit(f"smoke test: a waiting task got {status}: {body}")


def main() -> int:
    base = f"http://127.0.0.1:{setting('API_PORT', '8000')}"
    wait_until_ready(base, float(setting("SMOKE_TIMEOUT", "180")))
    print(f"smoke test: {base} is ready")
    token = log_in(base)
    print("smoke test: logged in as the first superuser")
    run_task(base, token)
    print("smoke test: a task ran through a worker and came back: 21 x 2 = 42")
    return 0


if __name__ == "__main__":
    sys.exit(main())
