"""A small threaded TCP forwarding proxy on 127.0.0.1, to cut the network between one program and a broker.

`cut()` drops every forwarded connection at once and then refuses new ones (accepted and reset at once) or
blackholes them (accepted and held silent, as if their packets were lost); `restore()` forwards again, starting with
the held connections, whose clients then see their bytes arrive late, as after a real network outage. `freeze()`
keeps the connections open now open but forwards nothing more on them, not even their end, as a proxy or NAT that
lost its state would. With `upstream_bytes_per_s`, what clients send towards the target is slowed to that rate, as on
a thin link.
"""

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Literal, Self

CutMode = Literal["refuse", "blackhole"]

_ACCEPT_POLL_S = 0.1
_CONNECT_TIMEOUT_S = 5.0
_CHUNK = 65536


def _drop(sock: socket.socket) -> None:
    """Close `sock` abruptly (RST, as a broken network would), waking any thread blocked reading it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> (a free port) to `target_host:target_port`, one thread per direction."""

    def __init__(self, target_host: str, target_port: int, *, upstream_bytes_per_s: int | None = None) -> None:
        self.target = (target_host, target_port)
        self._upstream_rate = upstream_bytes_per_s
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(_ACCEPT_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._held: list[socket.socket] = []
        self._frozen: set[tuple[socket.socket, socket.socket]] = set()
        self._ended: dict[tuple[socket.socket, socket.socket], int] = {}
        """How many directions of a connection have ended cleanly; it is closed once both have."""
        self._mode: CutMode | None = None
        self._closed = threading.Event()
        self.accepted = 0
        """Connections accepted so far, forwarded or not."""
        self.forwarded = 0
        """Connections forwarded to the target so far."""
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._acceptor.start()

    @classmethod
    def to_url(cls, broker_url: str, *, upstream_bytes_per_s: int | None = None) -> "TcpProxy":
        """A proxy in front of the broker at `mqtt://host:port`."""
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        return cls(host, int(port), upstream_bytes_per_s=upstream_bytes_per_s)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._mode is not None

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self, mode: CutMode = "refuse") -> None:
        """Drop every forwarded connection now; until `restore()`, refuse or blackhole new ones."""
        with self._lock:
            self._mode = mode
            pairs, self._pairs = self._pairs, set()
            for pair in pairs:
                self._ended.pop(pair, None)
        for client, upstream in pairs:
            _drop(client)
            _drop(upstream)

    def freeze(self) -> None:
        """From now on, forward nothing on the connections open now, in either direction, and keep them open whatever
        either side does (close() ends them); new connections are forwarded as usual."""
        with self._lock:
            self._frozen |= self._pairs
            self._pairs = set()

    def restore(self) -> None:
        """Forward new connections again, and the ones a blackhole held (what their clients sent is still queued)."""
        with self._lock:
            self._mode = None
            held, self._held = self._held, []
        for sock in held:
            self._admit(sock)

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(5)
        self.cut()
        with self._lock:
            held, self._held = self._held, []
            frozen, self._frozen = self._frozen, set()
        for sock in [*held, *(sock for pair in frozen for sock in pair)]:
            _drop(sock)
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.accepted += 1
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            mode = self._mode
            if mode == "blackhole":
                self._held.append(client)
                return
        if mode == "refuse":
            _drop(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=_CONNECT_TIMEOUT_S)
        except OSError:
            _drop(client)
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (client, upstream)
        with self._lock:
            if self._mode is not None:  # cut while connecting
                _drop(client)
                _drop(upstream)
                return
            self._pairs.add(pair)
            self.forwarded += 1
        for source, sink, rate in ((client, upstream, self._upstream_rate), (upstream, client, None)):
            threading.Thread(target=self._pump, args=(pair, source, sink, rate), daemon=True).start()

    def _pump(
        self, pair: tuple[socket.socket, socket.socket], source: socket.socket, sink: socket.socket, rate: int | None
    ) -> None:
        chunk = _CHUNK if rate is None else max(1, rate // 100)  # a slowed stream goes in hundredths of a second
        try:
            while data := source.recv(chunk):
                if pair in self._frozen:
                    continue  # swallowed
                sink.sendall(data)
                if rate is not None:
                    time.sleep(len(data) / rate)
            if pair in self._frozen:
                return  # the end of the stream too
            sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on; the other direction may still run
        except OSError:
            if pair in self._frozen:
                return
            # A broken side (or a cut): break the whole connection, as a broken network would.
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                _drop(sock)
            return
        with self._lock:
            done = self._ended.pop(pair, 0) + 1
            if done < 2:
                self._ended[pair] = done
                return
            self._pairs.discard(pair)
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.close()
