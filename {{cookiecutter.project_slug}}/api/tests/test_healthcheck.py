"""The image's health probe: its exit code follows the API's liveness route."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from commands import healthcheck


@contextmanager
def serving(status: int) -> Iterator[int]:
    """A server whose /api/v1/health answers this status; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/api/v1/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_healthcheck_exit_code_follows_the_liveness_route(
    monkeypatch: pytest.MonkeyPatch, status: int, exit_code: int
) -> None:
    with serving(status) as port:
        monkeypatch.setenv("API_PORT", str(port))
        assert healthcheck.main() == exit_code


def closed_port() -> int:
    """A port that was free a moment ago: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthcheck_fails_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", str(closed_port()))
    assert healthcheck.main() == 1


def test_healthcheck_bypasses_a_proxy_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("no_proxy", "")
    with serving(200) as port:
        monkeypatch.setenv("API_PORT", str(port))
        assert healthcheck.main() == 0
