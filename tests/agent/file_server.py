"""A real HTTP file server on 127.0.0.1 for download tests, with routes for every way a download can go wrong."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

BODY = b"tether content\n" * 1000


class Server:
    def __init__(self) -> None:
        self.release = threading.Event()
        """Set at teardown: ends every slow or trickling response."""
        self.files: dict[str, bytes] = {}
        """Served at /files/<name>."""
        self.redirects: dict[str, str] = {}
        """Answered at /files/<name> with a 302 to the URL."""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        release, files, redirects = self.release, self.files, self.redirects

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith("/files/") and path.removeprefix("/files/") in files:
                    self._send(200, files[path.removeprefix("/files/")])
                elif path.startswith("/files/") and path.removeprefix("/files/") in redirects:
                    self._redirect(redirects[path.removeprefix("/files/")])
                elif path.startswith("/file"):
                    self._send(200, BODY)
                elif path == "/unannounced":  # no Content-Length: the body ends when the connection closes
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(BODY)
                elif path == "/redirect":
                    self._redirect("/file.bin?token=x")
                elif path == "/redirect-ftp":
                    self._redirect("ftp://127.0.0.1/file.bin")
                elif path == "/redirect-missing":
                    self._redirect("/gone?token=secret")
                elif path == "/slow":
                    release.wait(5)
                    self._send(200, BODY)
                elif path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**9))
                    self.end_headers()
                    while not release.wait(0.02):
                        self.wfile.write(b"x" * 1024)
                        self.wfile.flush()
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


@pytest.fixture
def file_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A started server; requests go straight to it, whatever proxy the environment names."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = Server()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()
