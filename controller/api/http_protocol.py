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


class DeadlinedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers take longer than HEADERS_TIMEOUT_S."""

    _headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_headers_deadline()  # the next request on a kept-alive connection gets a deadline of its own

    def on_headers_complete(self) -> None:
        self._cancel_headers_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_deadline()
        super().connection_lost(exc)

    def _start_headers_deadline(self) -> None:
        self._cancel_headers_deadline()
        self._headers_deadline = self.loop.call_later(HEADERS_TIMEOUT_S, self._headers_late)

    def _cancel_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_late(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
