"""Pytest fixtures that run real MQTT brokers on free ports: the embedded amqtt and a private Mosquitto."""

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller.broker import AmqttBroker, EmbeddedBroker, ListenAddress, MosquittoBroker
from controller.errors import BrokerError

_THREAD_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def broker_in_thread(make: Callable[[], EmbeddedBroker]) -> Iterator[str]:
    """Run a broker on its own event loop in a thread and yield its URL, so any test, sync or async, can use it."""
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]]
    started = concurrent.futures.Future()
    failures: list[BaseException] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with make() as broker:
            started.set_result((asyncio.get_running_loop(), stop, broker.url))
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as err:  # handed to the test thread, which raises it
            if started.done():
                failures.append(err)
            else:
                started.set_exception(err)

    thread = threading.Thread(target=run, name="test-broker", daemon=True)
    thread.start()
    loop, stop, url = started.result(timeout=_THREAD_TIMEOUT)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(_THREAD_TIMEOUT)
        if thread.is_alive():
            pytest.fail(f"the broker at {url} did not stop within {_THREAD_TIMEOUT:.0f} s")
        if failures:
            raise failures[0]


@pytest.fixture
def amqtt_url() -> Iterator[str]:
    """URL of the embedded amqtt broker, running on its own loop in a thread."""
    with broker_in_thread(lambda: AmqttBroker(ListenAddress("127.0.0.1", free_port()))) as url:
        yield url


@pytest.fixture
def mosquitto_url(tmp_path: Path) -> Iterator[str]:
    """URL of a private Mosquitto started by MosquittoBroker; fails, never skips, when it cannot start."""
    listen = ListenAddress("127.0.0.1", free_port())
    try:
        with broker_in_thread(lambda: MosquittoBroker(listen, tmp_path / "mosquitto")) as url:
            yield url
    except BrokerError as err:
        pytest.fail(f"private Mosquitto did not start: {err}")


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """URL of each broker Tether can embed in turn."""
    return str(request.getfixturevalue(f"{request.param}_url"))
