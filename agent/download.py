"""Fetches a file over HTTP(S) into place, checked against a size limit and its SHA-256 if known, atomically."""

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException, HTTPMessage, HTTPResponse
from pathlib import Path
from typing import IO

from agent.errors import HandlerError
from shared.arguments.apps import HttpFile

CHUNK_BYTES = 256 * 1024
STALL_S = 60.0
"""The longest a single connect or read may wait for the server, whatever the download's overall limit."""
USER_AGENT = "tetherd"
MAX_DOWNLOAD_BYTES = 4 * 1024**3
DOWNLOAD_TIMEOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    path: Path
    size_bytes: int
    sha256: str
    duration_s: float


async def fetch(download: HttpFile, destination: Path, *, max_bytes: int, timeout_s: float) -> FetchResult:
    """Download `download` to `destination`, or raise HandlerError and leave nothing behind.

    The body streams into a hidden temporary file beside `destination` that is renamed over it only once the size and
    the SHA-256 check out, so a reader never sees a partial or unverified file.
    """
    url = str(download.url)
    shown = without_query(url)
    limit = min(max_bytes, download.size_bytes or max_bytes)
    started = time.monotonic()
    try:
        fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    except OSError as err:
        raise HandlerError(f"cannot write to {destination.parent}: {err.strerror or err}") from err
    partial = Path(name)
    # The blocking transfer runs in a worker thread that owns the file and the connection; this task owns the
    # deadline. On cancellation the thread is told to stop at its next chunk and the partial file goes at once.
    stop = threading.Event()
    https_only = download.sha256 is None and download.url.scheme == "https"
    transfer = _Transfer(url, fd, limit, min(timeout_s, STALL_S), stop, https_only)
    try:
        async with asyncio.timeout(timeout_s):
            size, digest = await asyncio.to_thread(transfer.run)
        _check(download, size, digest, shown)
        os.replace(partial, destination)
    except TimeoutError as err:
        raise HandlerError(f"download timed out after {timeout_s:g}s from {shown}") from err
    except OSError as err:
        raise HandlerError(f"cannot write {destination}: {err.strerror or err}") from err
    finally:
        stop.set()
        if transfer.claim():  # cancelled before the thread began: the descriptor is still ours to close
            os.close(fd)
        # Synchronously: cleanup must finish even while the task is being cancelled.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return FetchResult(destination, size, digest, time.monotonic() - started)


def file_name(download: HttpFile) -> str:
    """A safe local name for the download: the last part of its URL path (whose suffix says what it is)."""
    last = urllib.parse.unquote(urllib.parse.urlsplit(str(download.url)).path).rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", last)[-128:].lstrip(".")
    return name or "download"


def _check(download: HttpFile, size: int, digest: str, shown: str) -> None:
    if download.size_bytes is not None and size != download.size_bytes:
        raise HandlerError(f"size mismatch: expected {download.size_bytes} bytes, got {size} from {shown}")
    if download.sha256 is not None and digest != download.sha256.lower():
        raise HandlerError(f"sha256 mismatch: expected {download.sha256.lower()}, got {digest}")


def without_query(url: str) -> str:
    """`url` fit for a failure reason: a query string or a fragment may carry a token."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only; urllib alone would also follow one to ftp. A download without a
    SHA-256 that began on https stays there: TLS is all that vouches for it, and a package mirror a redirector sends
    it to over plain http could be anyone's."""

    def __init__(self, https_only: bool) -> None:
        super().__init__()
        self.https_only = https_only

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise HandlerError(f"download failed: {without_query(req.full_url)} redirected to a {scheme} URL")
        if self.https_only and scheme != "https":
            fp.close()
            raise HandlerError(
                f"download failed: {without_query(req.full_url)} redirected to an http URL, where nothing checks the "
                "file: give its sha256"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(https_only: bool) -> urllib.request.OpenerDirector:
    """HTTP and HTTPS (with the environment's proxies) and nothing else: no file:, ftp: or data: URLs."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _HttpOnlyRedirects(https_only),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class _Transfer:
    """One GET streamed into an open file descriptor, run in a worker thread."""

    def __init__(self, url: str, fd: int, limit: int, stall_s: float, stop: threading.Event, https_only: bool) -> None:
        self.url = url
        self.https_only = https_only
        self.fd = fd
        self.limit = limit
        self.stall_s = stall_s
        self.stop = stop
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """Take ownership of the descriptor; only the first caller (the thread, or the cancelled task) gets it."""
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    def run(self) -> tuple[int, str]:
        """Return the size and hex SHA-256 of what was written; raise HandlerError on any failure."""
        if not self.claim():
            raise HandlerError("download cancelled")
        shown = without_query(self.url)
        request = urllib.request.Request(self.url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        with open(self.fd, "wb") as file:
            try:
                with _opener(self.https_only).open(request, timeout=self.stall_s) as response:
                    return self._stream(response, file, shown)
            except urllib.error.HTTPError as err:
                err.close()
                raise HandlerError(f"download failed: HTTP {err.code} from {without_query(err.url)}") from err
            except urllib.error.URLError as err:
                raise HandlerError(f"download failed: {_describe(err.reason)} ({shown})") from err
            except TimeoutError as err:
                raise HandlerError(f"download timed out: no data for {self.stall_s:g}s from {shown}") from err
            except HTTPException as err:
                raise HandlerError(f"download failed: bad HTTP response ({type(err).__name__}) from {shown}") from err
            except OSError as err:
                raise HandlerError(f"download failed: {_describe(err)} ({shown})") from err

    def _stream(self, response: HTTPResponse, file: IO[bytes], shown: str) -> tuple[int, str]:
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > self.limit:
            raise HandlerError(f"download refused: {shown} is {announced} bytes, more than the limit of {self.limit}")
        digest = hashlib.sha256()
        size = 0
        while not self.stop.is_set():
            chunk = response.read1(CHUNK_BYTES)  # what has arrived, so a stop request is seen soon
            if not chunk:
                return size, digest.hexdigest()
            size += len(chunk)
            if size > self.limit:
                raise HandlerError(f"download refused: {shown} is more than the limit of {self.limit} bytes")
            digest.update(chunk)
            try:
                file.write(chunk)
            except OSError as err:
                raise HandlerError(f"cannot write the download: {err.strerror or err}") from err
        raise HandlerError("download cancelled")


def _describe(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out connecting"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name: {reason.strerror}"
    if isinstance(reason, OSError):
        return reason.strerror or str(reason)
    return str(reason)
