"""Tests of controller/broker.py against real brokers and real paho clients over TCP."""

import asyncio
import os
import queue
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.broker import AmqttBroker, EmbeddedBroker, ListenAddress, MosquittoBroker, make_broker
from controller.errors import BrokerError
from shared.topics import TopicKind, Topics
from tests.fixtures_brokers import broker_in_thread, free_port

TOPICS = Topics()
WAIT = 5.0


class Client:
    """A paho client on its own network thread that records every message it receives."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        keepalive: int = 60,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        address = urlsplit(url)
        assert address.hostname is not None
        assert address.port is not None
        self.received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acknowledge = not manual_ack
        self._silent = False
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._network_thread: threading.Thread | None = None
        self._acked: set[int] = set()
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=manual_ack
        )
        self.paho.on_connect = lambda *_: self._connected.set()
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = lambda _client, _userdata, mid, *_: self._acked.add(mid)
        if will is not None:
            self.paho.will_set(will[0], will[1], qos=1, retain=True)
        self.paho.connect(address.hostname, address.port, keepalive=keepalive)
        self.paho.loop_start()
        assert self._connected.wait(WAIT), f"{client_id} got no CONNACK"

    def _on_disconnect(self, *_: object) -> None:
        self._network_thread = threading.current_thread()  # paho calls back on its network thread
        self._disconnected.set()

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        self.received.put(message)
        if self.acknowledge:  # with manual_ack, paho sends the PUBACK only when told
            client.ack(message.mid, message.qos)

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.paho.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + WAIT
        while mid not in self._acked:
            assert time.monotonic() < deadline, f"no SUBACK for {topic_filter}"
            time.sleep(0.01)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)

    def wait_for(self, topic: str, timeout: float = WAIT) -> list[mqtt.MQTTMessage]:
        """Everything received up to and including the first message on `topic`."""
        seen: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + timeout
        while not seen or seen[-1].topic != topic:
            seen.append(self.received.get(timeout=max(deadline - time.monotonic(), 0.01)))
        return seen

    def drain(self) -> list[mqtt.MQTTMessage]:
        messages = []
        while not self.received.empty():
            messages.append(self.received.get_nowait())
        return messages

    def go_silent(self) -> None:
        """Stop the network thread: the socket stays open, but nothing is read or sent, not even PINGREQ."""
        self._silent = True
        self.paho.loop_stop()

    def close(self) -> None:
        self.paho.disconnect()
        if not self._silent:
            # loop_stop() may end the network thread before it sends the DISCONNECT, and once the thread has ended
            # by itself paho 2.2's loop_stop() can race it (AttributeError on join): wait for it, then join it here.
            assert self._disconnected.wait(WAIT), "no disconnect"
            assert self._network_thread is not None
            self._network_thread.join(WAIT)
        sock = self.paho.socket()
        if sock is not None:  # a silent client never sent its DISCONNECT; paho would leave the socket to the GC
            sock.close()


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def connect(
    stack: ExitStack,
    url: str,
    client_id: str,
    *,
    keepalive: int = 60,
    manual_ack: bool = False,
    will: tuple[str, bytes] | None = None,
) -> Client:
    client = Client(url, client_id, keepalive=keepalive, manual_ack=manual_ack, will=will)
    stack.callback(client.close)
    return client


def enter_and_exit(broker: EmbeddedBroker) -> None:
    async def run() -> None:
        async with broker:
            pass

    asyncio.run(run())


# --- ListenAddress --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:1883", "127.0.0.1", 1883),
        ("[::1]:1883", "::1", 1883),
        ("localhost:8883", "localhost", 8883),
        (" 0.0.0.0:65535 ", "0.0.0.0", 65535),
    ],
)
def test_parse_accepts_host_and_port(text: str, host: str, port: int) -> None:
    address = ListenAddress.parse(text)
    assert address == ListenAddress(host, port)
    assert ListenAddress.parse(str(address)) == address


@pytest.mark.parametrize(
    "text", ["", "1883", "localhost", ":1883", "host:", "host:0", "host:65536", "host:x", "[::1]", "[::1]1883", "a b:1"]
)
def test_parse_rejects_malformed_addresses(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid listen address .*(HOST:PORT|port must be)"):
        ListenAddress.parse(text)


def test_parse_asks_for_brackets_around_ipv6() -> None:
    with pytest.raises(ValueError, match=r"brackets, e\.g\. \[::1\]:1883"):
        ListenAddress.parse("::1:1883")


def test_url_reaches_a_wildcard_listener_over_loopback() -> None:
    assert ListenAddress.parse("0.0.0.0:1884").url == "mqtt://127.0.0.1:1884"
    assert ListenAddress.parse("[::]:1884").url == "mqtt://[::1]:1884"
    assert ListenAddress.parse("[::1]:1884").url == "mqtt://[::1]:1884"


# --- starting and failing to start ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_taken_port_is_one_clear_line(kind: Literal["amqtt", "mosquitto"], tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError) as caught:
            enter_and_exit(make_broker(kind, ListenAddress("127.0.0.1", port), tmp_path))
    assert str(caught.value) == (
        f"MQTT port 127.0.0.1:{port} is already in use; choose another with --mqtt-listen HOST:PORT"
    )


def fake_mosquitto(directory: Path, script: str) -> Path:
    executable = directory / "mosquitto"
    executable.write_text(f"#!/bin/sh\n{script}\n")
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    return executable


def test_port_taken_after_the_check_is_the_same_clear_line(tmp_path: Path) -> None:
    executable = fake_mosquitto(tmp_path, 'echo "Error: Address already in use" >&2; exit 1')
    listen = ListenAddress("127.0.0.1", free_port())
    with pytest.raises(BrokerError, match=r"^MQTT port 127\.0\.0\.1:\d+ is already in use; choose another"):
        enter_and_exit(MosquittoBroker(listen, tmp_path / "data", executable=str(executable)))


def test_mosquitto_exiting_early_shows_its_output(tmp_path: Path) -> None:
    executable = fake_mosquitto(tmp_path, 'echo "Error: Unknown configuration variable" >&2; exit 3')
    listen = ListenAddress("127.0.0.1", free_port())
    with pytest.raises(BrokerError, match=r"exited with status 3 .*\n.*Error: Unknown configuration variable"):
        enter_and_exit(MosquittoBroker(listen, tmp_path / "data", executable=str(executable)))


def test_missing_mosquitto_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError) as caught:
        enter_and_exit(MosquittoBroker(ListenAddress("127.0.0.1", free_port()), tmp_path))
    assert str(caught.value) == "mosquitto is not installed; install it or use --embedded-broker amqtt"


def test_mosquitto_keeps_its_files_in_the_data_dir(tmp_path: Path) -> None:
    enter_and_exit(make_broker("mosquitto", ListenAddress("127.0.0.1", free_port()), tmp_path))
    assert {"mosquitto.conf", "mosquitto.db", "mosquitto.log"} <= {path.name for path in tmp_path.iterdir()}
    assert "max_queued_messages 0" in (tmp_path / "mosquitto.conf").read_text()


def mosquitto_pid(config: Path) -> int | None:
    """The pid of the Mosquitto running `config`, if one does."""
    found = subprocess.run(["pgrep", "-f", "--", f"-c {config}$"], capture_output=True, text=True, check=False).stdout
    return int(found.split()[0]) if found.strip() else None


async def until(check: Callable[[], bool]) -> None:
    """Poll `check` until it holds, for at most WAIT seconds."""
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 -- files and processes offer nothing to await
            await asyncio.sleep(0.05)


def broker_listening(url: str) -> bool:
    address = urlsplit(url)
    try:
        socket.create_connection((address.hostname, address.port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_killed_mosquitto_is_started_again_with_the_session_it_saved(tmp_path: Path, clients: ExitStack) -> None:
    """save() (which `tether serve` calls once subscribed) puts the session on disk: statuses published after a
    SIGKILL and the restart wait for their subscriber instead of reaching nobody."""
    config = tmp_path / "data" / "mosquitto.conf"

    async def scenario() -> None:
        async with MosquittoBroker(ListenAddress("127.0.0.1", free_port()), tmp_path / "data") as broker:
            controller = Client(broker.url, "controller-like")
            controller.subscribe(TOPICS.fleet_filter(TopicKind.STATUS))
            broker.save()
            await until((tmp_path / "data" / "mosquitto.db").exists)
            first = mosquitto_pid(config)
            assert first is not None
            controller.go_silent()  # it stays away until after the restart

            os.kill(first, signal.SIGKILL)
            await until(partial(restarted, config, first, broker.url))
            device = connect(clients, broker.url, "device")
            device.publish(TOPICS.status("dev-1", "cmd-1"), b"done")

            back = connect(clients, broker.url, "controller-like")
            [status] = back.wait_for(TOPICS.status("dev-1", "cmd-1"))
            assert status.payload == b"done"

    asyncio.run(scenario())


def restarted(config: Path, dead: int | None, url: str) -> bool:
    """Whether a Mosquitto other than `dead` runs `config` and listens."""
    return mosquitto_pid(config) not in (None, dead) and broker_listening(url)


def test_a_mosquitto_that_keeps_dying_is_restarted_ever_more_slowly_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "data" / "mosquitto.conf"

    def restarts() -> int:
        return sum(record.getMessage().startswith("mosquitto restarted") for record in caplog.records)

    async def scenario() -> None:
        async with MosquittoBroker(ListenAddress("127.0.0.1", free_port()), tmp_path / "data"):
            for count in range(1, 4):
                dying = mosquitto_pid(config)
                assert dying is not None
                os.kill(dying, signal.SIGKILL)
                await until(lambda count=count: restarts() >= count)

    with caplog.at_level("INFO", logger="controller.broker"):
        asyncio.run(scenario())
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    waits = [message.rsplit(" in ", 1)[1] for level, message in lines if level == "ERROR"]
    assert waits == ["0.5 s", "1.0 s", "2.0 s"], lines
    assert [level for level, message in lines if "restarted" in message] == ["WARNING"] * 3


# --- delivery -------------------------------------------------------------------------------------------------------


def test_mosquitto_delivers_a_retained_qos1_command(mosquitto_url: str, clients: ExitStack) -> None:
    topic = TOPICS.command("dev-1", "cmd-1")
    connect(clients, mosquitto_url, "controller").publish(topic, b"reboot", retain=True)
    device = connect(clients, mosquitto_url, "dev-1")
    device.subscribe(TOPICS.device_commands_filter("dev-1"))
    [message] = device.wait_for(topic)
    assert (message.payload, message.qos, message.retain) == (b"reboot", 1, True)


def test_retained_commands_reach_only_their_own_device(broker_url: str, clients: ExitStack) -> None:
    # amqtt 0.12.1 sent every connecting client the retained messages of every client's subscriptions.
    controller = connect(clients, broker_url, "controller")
    for device in ("dev-a", "dev-b"):
        controller.publish(TOPICS.command(device, f"cmd-{device}"), device.encode(), retain=True)

    a = connect(clients, broker_url, "dev-a")
    a.subscribe(TOPICS.device_commands_filter("dev-a"))
    received_a = a.wait_for(TOPICS.command("dev-a", "cmd-dev-a"))
    b = connect(clients, broker_url, "dev-b")
    b.subscribe(TOPICS.device_commands_filter("dev-b"))
    received_b = b.wait_for(TOPICS.command("dev-b", "cmd-dev-b"))
    a.close()
    a = connect(clients, broker_url, "dev-a")  # the same persistent session, not subscribing again

    # A message after the reconnect: anything the broker sends on (re)connect arrives before it.
    for device in ("dev-a", "dev-b"):
        controller.publish(TOPICS.command(device, "sentinel"), b"")
    received_a += a.wait_for(TOPICS.command("dev-a", "sentinel"))
    received_b += b.wait_for(TOPICS.command("dev-b", "sentinel"))
    time.sleep(0.2)
    received_a += a.drain()
    received_b += b.drain()

    assert {message.topic for message in received_a} <= {TOPICS.command("dev-a", c) for c in ("cmd-dev-a", "sentinel")}
    assert {message.topic for message in received_b} <= {TOPICS.command("dev-b", c) for c in ("cmd-dev-b", "sentinel")}


def test_persistent_session_gets_what_was_published_while_offline(broker_url: str, clients: ExitStack) -> None:
    # amqtt's anonymous login dropped persistent sessions a second after disconnect.
    device = connect(clients, broker_url, "dev-1")
    device.subscribe(TOPICS.device_commands_filter("dev-1"))
    device.close()
    time.sleep(1.5)
    connect(clients, broker_url, "controller").publish(TOPICS.command("dev-1", "while-away"), b"x")
    device = connect(clients, broker_url, "dev-1")
    assert device.wait_for(TOPICS.command("dev-1", "while-away"))[-1].payload == b"x"


def test_reconnecting_over_a_half_open_connection_takes_the_session_over(broker_url: str, clients: ExitStack) -> None:
    # amqtt published the old connection's will and left the session marked offline, queuing what was sent to it.
    watcher = connect(clients, broker_url, "controller")
    watcher.subscribe(TOPICS.fleet_filter(TopicKind.PRESENCE))
    will = (TOPICS.presence("dev-1"), b"offline")
    old = connect(clients, broker_url, "dev-1", will=will)
    old.subscribe(TOPICS.device_commands_filter("dev-1"))
    old.go_silent()  # its socket stays open, so the broker still counts it as connected
    new = connect(clients, broker_url, "dev-1", will=will)

    watcher.publish(TOPICS.command("dev-1", "after-takeover"), b"x")
    assert new.wait_for(TOPICS.command("dev-1", "after-takeover"))[-1].payload == b"x"
    watcher.publish(TOPICS.presence("dev-2"), b"sentinel")
    assert [message.topic for message in watcher.wait_for(TOPICS.presence("dev-2"))] == [TOPICS.presence("dev-2")]


def test_silent_client_is_dropped_and_its_will_published(broker_url: str, clients: ExitStack) -> None:
    # amqtt 0.12.1 ignored the keep-alive, so a vanished device never went offline.
    watcher = connect(clients, broker_url, "controller")
    watcher.subscribe(TOPICS.fleet_filter(TopicKind.PRESENCE))
    device = connect(clients, broker_url, "dev-1", keepalive=1, will=(TOPICS.presence("dev-1"), b"offline"))
    device.go_silent()
    [will] = watcher.wait_for(TOPICS.presence("dev-1"), timeout=10)  # Mosquitto took about 4 s
    assert will.payload == b"offline"


def test_amqtt_keeps_a_bounded_window_of_unacknowledged_deliveries() -> None:
    # amqtt 0.12.1 sent everything at once; past 65,535 unacknowledged it spun at 100% CPU.
    window, total = 10, 50
    listen = ListenAddress("127.0.0.1", free_port())
    with broker_in_thread(lambda: AmqttBroker(listen, max_inflight=window)) as url, ExitStack() as clients:
        device = connect(clients, url, "dev-1", manual_ack=True)
        device.subscribe(TOPICS.device_commands_filter("dev-1"))
        controller = connect(clients, url, "controller")
        for n in range(total):
            controller.publish(TOPICS.command("dev-1", f"cmd-{n}"), b"")
        held: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + 2
        while len(held) < window and time.monotonic() < deadline:
            held += device.drain()
            time.sleep(0.02)
        time.sleep(0.5)  # time enough for the rest to come, were there no window; within amqtt's 5 s PUBACK timeout
        held += device.drain()
        assert len(held) == window

        device.acknowledge = True
        for message in held:
            device.paho.ack(message.mid, message.qos)
        deadline = time.monotonic() + WAIT
        while len(held) < total and time.monotonic() < deadline:
            held += device.drain()
            time.sleep(0.05)
    expected = sorted(TOPICS.command("dev-1", f"cmd-{n}") for n in range(total))
    assert sorted(message.topic for message in held) == expected
