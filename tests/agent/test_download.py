"""agent.download against a real HTTP server on 127.0.0.1: hashes, limits, HTTP errors, timeouts and cancellation."""

import asyncio
import hashlib
import socket
from pathlib import Path

import pytest

from agent import download
from agent.download import FetchResult, fetch, file_name
from agent.errors import HandlerError
from shared.arguments.apps import Download
from tests.agent.file_server import BODY, Server, file_server

__all__ = ["file_server"]  # the fixture, imported for pytest
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()


def spec(url: str, sha256: str = BODY_SHA256, size_bytes: int | None = None) -> Download:
    return Download.model_validate({"url": url, "sha256": sha256, "size_bytes": size_bytes})


def get(download: Download, destination: Path, *, max_bytes: int = 10**6, timeout_s: float = 5) -> FetchResult:
    return asyncio.run(fetch(download, destination, max_bytes=max_bytes, timeout_s=timeout_s))


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_download_lands_with_its_hash(file_server: Server, tmp_path: Path) -> None:
    result = get(spec(file_server.url("/file.bin"), size_bytes=len(BODY)), tmp_path / "file.bin")

    assert (result.path, result.size_bytes, result.sha256) == (tmp_path / "file.bin", len(BODY), BODY_SHA256)
    assert 0 <= result.duration_s < 5
    assert (tmp_path / "file.bin").read_bytes() == BODY
    assert leftovers(tmp_path) == ["file.bin"]


def test_uppercase_hash_is_accepted(file_server: Server, tmp_path: Path) -> None:
    assert get(spec(file_server.url("/file"), BODY_SHA256.upper()), tmp_path / "f").sha256 == BODY_SHA256


def test_hash_mismatch_deletes_the_file_and_keeps_the_old_one(file_server: Server, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/file"), "0" * 64), tmp_path / "f")

    assert str(caught.value) == f"sha256 mismatch: expected {'0' * 64}, got {BODY_SHA256}"
    assert leftovers(tmp_path) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"old"


def test_announced_size_over_the_limit_is_refused_before_reading(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/file")), tmp_path / "f", max_bytes=100)

    assert (
        str(caught.value)
        == f"download refused: {file_server.url('/file')} is {len(BODY)} bytes, more than the limit of 100"
    )
    assert leftovers(tmp_path) == []


def test_streamed_size_over_the_limit_is_refused(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/unannounced")), tmp_path / "f", max_bytes=100)

    assert (
        str(caught.value) == f"download refused: {file_server.url('/unannounced')} is more than the limit of 100 bytes"
    )
    assert leftovers(tmp_path) == []


def test_the_declared_size_is_a_limit_too(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"^download refused: .* more than the limit of 10$"):
        get(spec(file_server.url("/file"), size_bytes=10), tmp_path / "f")


def test_a_shorter_file_than_declared_is_refused(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/file"), size_bytes=len(BODY) + 1), tmp_path / "f")

    assert (
        str(caught.value)
        == f"size mismatch: expected {len(BODY) + 1} bytes, got {len(BODY)} from {file_server.url('/file')}"
    )
    assert leftovers(tmp_path) == []


def test_http_error_names_the_status_and_the_url_without_its_query(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/nothing?token=secret")), tmp_path / "f")

    assert str(caught.value) == f"download failed: HTTP 404 from {file_server.url('/nothing')}"
    assert leftovers(tmp_path) == []


def test_redirect_is_followed(file_server: Server, tmp_path: Path) -> None:
    assert get(spec(file_server.url("/redirect")), tmp_path / "f").sha256 == BODY_SHA256


def test_http_error_after_a_redirect_names_the_final_url(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=rf"^download failed: HTTP 404 from {file_server.url('/gone')}$"):
        get(spec(file_server.url("/redirect-missing")), tmp_path / "f")


def test_redirect_to_another_scheme_is_refused(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/redirect-ftp")), tmp_path / "f")

    assert str(caught.value) == f"download failed: {file_server.url('/redirect-ftp')} redirected to a ftp URL"
    assert leftovers(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(HandlerError) as caught:
        get(spec(f"http://127.0.0.1:{port}/f?sig=1"), tmp_path / "f")

    assert str(caught.value) == f"download failed: connection refused (http://127.0.0.1:{port}/f)"
    assert leftovers(tmp_path) == []


def test_a_silent_server_times_out(file_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "STALL_S", 0.3)

    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/slow")), tmp_path / "f", timeout_s=5)

    assert str(caught.value) == f"download timed out: no data for 0.3s from {file_server.url('/slow')}"
    assert leftovers(tmp_path) == []


def test_a_download_past_its_deadline_times_out(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        get(spec(file_server.url("/trickle")), tmp_path / "f", max_bytes=10**9, timeout_s=0.5)

    assert str(caught.value) == f"download timed out after 0.5s from {file_server.url('/trickle')}"
    assert leftovers(tmp_path) == []


def test_cancellation_removes_the_partial_file(file_server: Server, tmp_path: Path) -> None:
    async def cancel_midway() -> None:
        task = asyncio.create_task(
            fetch(spec(file_server.url("/trickle")), tmp_path / "f", max_bytes=10**9, timeout_s=30)
        )
        async with asyncio.timeout(5):
            # Polling a directory: no event tells when the worker thread has written.
            while not any(path.stat().st_size for path in tmp_path.iterdir()):  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert leftovers(tmp_path) == []

    asyncio.run(cancel_midway())
    assert leftovers(tmp_path) == []


def test_unwritable_destination(file_server: Server, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=rf"^cannot write to {tmp_path / 'missing'}: No such file or directory$"):
        get(spec(file_server.url("/file")), tmp_path / "missing" / "f")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/pool/tool_1.2_amd64.deb?sig=abc", "tool_1.2_amd64.deb"),
        ("https://example.com/a%20b/update%201.raucb", "update_1.raucb"),
        ("https://example.com/", "download"),
        ("https://example.com/..", "download"),
        ("https://example.com/.hidden.swu", "hidden.swu"),
    ],
)
def test_file_name_comes_from_the_url_path(url: str, name: str) -> None:
    assert file_name(spec(url)) == name
