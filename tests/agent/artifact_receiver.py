"""The controller's artifact endpoint in miniature, for handler tests that upload a file."""

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """The controller's artifact endpoint in miniature: PUT stores the body and answers 201 with what it stored."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        stored = self.stored

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stored[self.path] = body
                answer = json.dumps(
                    {
                        "size_bytes": len(body),
                        "sha256": hashlib.sha256(body).hexdigest(),
                        "content_type": self.headers.get("Content-Type", "application/octet-stream"),
                    }
                ).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@contextmanager
def serving() -> Iterator[Receiver]:
    """A Receiver on a free port of 127.0.0.1, stopped on leaving."""
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
