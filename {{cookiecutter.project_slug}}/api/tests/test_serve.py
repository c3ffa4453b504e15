"""The container's helpers: the health probe and the metrics directory reset."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app import healthcheck
from app.serve import empty_metrics_directory


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


def test_healthcheck_fails_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("API_PORT", str(closed_port))
    assert healthcheck.main() == 1


def test_metrics_directory_loses_old_counts_and_keeps_other_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1234.db").write_bytes(b"old counts")
    (directory / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    empty_metrics_directory()
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]


def test_metrics_directory_is_made_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "not" / "there"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    empty_metrics_directory()
    assert directory.is_dir()
