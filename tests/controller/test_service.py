"""The HTTP listening socket `tether serve` binds itself."""

import socket

import pytest

from controller.broker import ListenAddress
from controller.errors import StartupError
from controller.service import bind_http
from tests.fixtures_brokers import free_port


def test_http_socket_is_tcp_so_asyncio_sets_nodelay_on_accepted_connections() -> None:
    sock = bind_http(ListenAddress("127.0.0.1", free_port()))
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_taken_http_port_names_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=rf"HTTP port 127.0.0.1:{port} .*--http-listen HOST:PORT"):
            bind_http(ListenAddress("127.0.0.1", port))
