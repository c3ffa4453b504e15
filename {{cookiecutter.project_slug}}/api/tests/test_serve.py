"""`python -m commands.serve`'s start-up: the multiprocess metrics directory reset,
and the options it gives uvicorn."""

import asyncio
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.core.config import Settings
from commands.serve import empty_metrics_directory, server_options
from testkit.lean_http import LeanConnection
from tests.conftest import listening

# uvicorn closes a connection idle for this long unless told otherwise.
UVICORN_KEEP_ALIVE = 5


def test_metrics_directory_loses_old_counts_and_keeps_other_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1234.db").write_bytes(b"old counts")
    (directory / "other.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    empty_metrics_directory()
    assert sorted(path.name for path in directory.iterdir()) == ["other.txt"]


def test_metrics_directory_is_made_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "not" / "there"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    empty_metrics_directory()
    assert directory.is_dir()


async def test_an_idle_connection_outlives_uvicorns_keep_alive(
    app: FastAPI, settings: Settings
) -> None:
    """A client that keeps its connections longer than uvicorn's own 5 s (a
    proxy, a pooled client) finds them open."""
    assert settings.API_KEEP_ALIVE_TIMEOUT > UVICORN_KEEP_ALIVE + 1
    async with listening(app, **server_options(settings)) as address:
        connection = LeanConnection(f"http://{address}")
        try:
            first, _ = await connection.request("GET", "/api/v1/health", {})
            await asyncio.sleep(UVICORN_KEEP_ALIVE + 1)
            # Raises ConnectionError if the server closed it meanwhile.
            again, _ = await connection.request("GET", "/api/v1/health", {})
        finally:
            connection.close()
    assert (first, again) == (200, 200)
