"""`python -m app.serve`'s start-up: the multiprocess metrics directory reset."""

from pathlib import Path

import pytest

from app.serve import empty_metrics_directory


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
