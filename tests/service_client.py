"""HTTP and process helpers for the tests that talk to a running rendered service."""

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest


def request(
    method: str,
    url: str,
    *,
    form: dict | None = None,
    body: dict | None = None,
    token: str | None = None,
    timeout: float = 10,
) -> tuple[int, dict | list, dict]:
    """(status, JSON body, headers) of one request; a form or a JSON body may go with it."""
    data = None
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    outgoing = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), dict(error.headers)


def log_in(base: str, email: str, password: str) -> str:
    status, token, _ = request(
        "POST", f"{base}/api/v1/auth/token", form={"username": email, "password": password}
    )
    assert status == 200, token
    return token["access_token"]


def answers(url: str) -> bool:
    """Whether GET url answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def read_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]):
    """Poll condition until it holds; fail with what did not happen, and the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout}s; the log:\n{log()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
