"""tests/prerequisites.py: a missing server binary skips a test, and fails it under CI."""

from pathlib import Path

import pytest

from tests.prerequisites import executable


def tool(directory: Path, name: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_path_comes_before_the_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tool(tmp_path / "bin", "nats-server")
    fallback = tool(tmp_path / "sbin", "nats-server")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert executable("nats-server", fallback) == on_path


def test_the_first_runnable_fallback_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    fallback = tool(tmp_path / "15", "initdb")
    assert executable("initdb", tmp_path / "16" / "initdb", fallback) == fallback


def test_a_missing_binary_skips_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        executable("initdb", tmp_path / "15" / "initdb")
    assert str(skipped.value) == f"initdb is not on PATH nor at {tmp_path}/15/initdb"


def test_a_missing_binary_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        executable("nats-server")
    assert str(failed.value) == "nats-server is not on PATH nor at any other place"
