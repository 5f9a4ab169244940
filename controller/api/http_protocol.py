"""uvicorn's HTTP protocol with a deadline on each request's headers.

uvicorn times out only the idle wait between two requests: a connection that never finished its first request's
headers (a slowloris, no key needed) was held, with its file descriptor, for as long as the client liked, and the
broker shares the process's descriptors. Each request now has HEADERS_TIMEOUT_S from its first byte (or from the
connection's start) to the end of its headers; the body's time is the route's (`routing.py`).
"""

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADERS_TIMEOUT_S = 10.0
"""As the MQTT listener's CONNECT_TIMEOUT_S: ample for any client that means to send a request."""
MAX_HEADER_BYTES = 64 * 1024
"""A request line and its headers: a key, a Cumulocity client's headers, a proxy's and a long cookie take a few KiB.
httptools sets no limit: within HEADERS_TIMEOUT_S one connection without a key made the controller hold (and copy
over and over) hundreds of MiB of a header value."""


class DeadlinedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers take longer than HEADERS_TIMEOUT_S."""

    _headers_deadline: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_headers_deadline()  # the next request on a kept-alive connection gets a deadline of its own

    def data_received(self, data: bytes) -> None:
        reading_headers = self._headers_deadline is not None
        super().data_received(data)
        # Counted once fed, and only while the headers go on: a chunk that ends them may carry much of a body.
        if reading_headers and self._headers_deadline is not None:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._headers_too_large()

    def on_headers_complete(self) -> None:
        self._cancel_headers_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_deadline()
        super().connection_lost(exc)

    def _start_headers_deadline(self) -> None:
        self._cancel_headers_deadline()
        self._header_bytes = 0
        self._headers_deadline = self.loop.call_later(HEADERS_TIMEOUT_S, self._headers_late)

    def _cancel_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_late(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _headers_too_large(self) -> None:
        self._cancel_headers_deadline()
        if not self.transport.is_closing():
            message = f"request headers over {MAX_HEADER_BYTES} bytes\n".encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(message), message)
            )
            self.transport.close()
