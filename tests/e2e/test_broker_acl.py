"""`tether broker acl` on a real Mosquitto: devices reach only their own topics, and Tether still works under it.

Each attack is made with a device's real login through the broker, and observed by the controller's login: what
the ACL refuses never arrives.
"""

import contextlib
import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.e2e.harness import Agent, Controller, PersistentMosquitto, assert_lock_runs, tether, wait_for

SETTLE_S = 1.0
"""How long a message the broker would deliver takes at most here; what has not arrived by then was refused."""


class Client:
    """A paho client logged in as `user`, recording what it receives."""

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None,
        *,
        wait: bool = True,
        client_id: str | None = None,
        clean_session: bool = True,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.refused: int | None = None
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{user}-probe-{time.monotonic_ns()}",
            clean_session=clean_session,
        )
        self._client.reconnect_delay_set(60, 60)  # what a test sees is what one connection did
        if user is not None:
            self._client.username_pw_set(user, password)
        if will is not None:
            self._client.will_set(*will, qos=1)
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if wait:
            assert self._connected.wait(5)

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.refused is None

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        self.refused = None if not reason.is_failure else reason.value
        self._connected.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, message.payload))

    def subscribe(self, topic: str) -> None:
        self._client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def try_publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish, as an attacker would; Mosquitto may drop the connection for it, which is refusal too."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(2)

    def topics(self) -> list[str]:
        with self._lock:
            return [topic for topic, _ in self.received]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def drop(self) -> None:
        """Close the socket without a DISCONNECT, as a device that loses its network does: its will is published."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()


def test_the_tool_adds_logins_without_changing_existing_ones(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    first = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a")
    before = (auth / "passwords").read_text()
    again = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a", "--device", "dev-c")
    assert [line.split()[0] for line in first.splitlines()] == ["tether-controller", "dev-a"]
    assert [line.split()[0] for line in again.splitlines()] == ["dev-c"]
    assert (auth / "passwords").read_text().startswith(before)
    assert (auth / "passwords").stat().st_mode & 0o777 == 0o600
    assert "pattern read tether/v1/devices/%u/commands/+" in (auth / "acl").read_text()


def test_tether_runs_an_operation_under_the_acl(
    secured: tuple[PersistentMosquitto, dict[str, str]], tmp_path: Path
) -> None:
    broker, credentials = secured
    controller = Controller(
        tmp_path, broker_url=f"mqtt://tether-controller:{credentials['tether-controller']}@127.0.0.1:{broker.port}"
    )
    agent = Agent(tmp_path, f"mqtt://dev-a:{credentials['dev-a']}@127.0.0.1:{broker.port}", "dev-a")
    try:
        controller.wait_online("dev-a")
        assert_lock_runs(controller, agent)
    finally:
        agent.stop()
        controller.stop()


def test_a_device_cannot_read_write_or_command_what_is_not_its_own(
    secured: tuple[PersistentMosquitto, dict[str, str]],
) -> None:
    broker, credentials = secured
    watcher = Client(broker.port, "tether-controller", credentials["tether-controller"])
    device_b = Client(broker.port, "dev-b", credentials["dev-b"])
    reader_a = Client(broker.port, "dev-a", credentials["dev-a"])
    clients = [watcher, device_b, reader_a]
    try:
        watcher.subscribe("tether/v1/#")
        device_b.subscribe("tether/v1/devices/dev-b/commands/+")
        reader_a.subscribe("tether/v1/devices/dev-b/commands/+")  # B's commands
        reader_a.subscribe("tether/v1/#")  # everything
        time.sleep(0.3)
        command = json.dumps({"command_id": "c-1", "device_id": "dev-b"}).encode()
        watcher.publish("tether/v1/devices/dev-b/commands/c-1", command, retain=True)  # the controller's command
        wait_for("B to get its command", lambda: "tether/v1/devices/dev-b/commands/c-1" in device_b.topics())

        for topic, retain in [
            ("tether/v1/devices/dev-b/status/c-1", False),  # B's status
            ("tether/v1/devices/dev-b/commands/c-2", True),  # a command to B
            ("tether/v1/devices/dev-b/presence", False),  # B's presence
            ("tether/v1/devices/dev-a/commands/c-3", False),  # a command to itself
        ]:
            attacker = Client(broker.port, "dev-a", credentials["dev-a"])
            attacker.try_publish(topic, b'{"forged": true}', retain=retain)
            attacker.close()
        own = Client(broker.port, "dev-a", credentials["dev-a"])
        clients.append(own)
        own.publish("tether/v1/devices/dev-a/status/c-9", b'{"own": "status"}')  # allowed: its own status
        wait_for(
            "A's own status to reach the controller", lambda: "tether/v1/devices/dev-a/status/c-9" in watcher.topics()
        )
        time.sleep(SETTLE_S)

        assert reader_a.topics() == []  # read nothing of B's, nor of anything else
        forged = {"tether/v1/devices/dev-b/status/c-1", "tether/v1/devices/dev-b/presence"}
        forged |= {"tether/v1/devices/dev-b/commands/c-2", "tether/v1/devices/dev-a/commands/c-3"}
        assert forged.isdisjoint(watcher.topics())
        assert "tether/v1/devices/dev-b/commands/c-2" not in device_b.topics()
    finally:
        for client in clients:
            client.close()


def test_strangers_and_wrong_passwords_cannot_connect(secured: tuple[PersistentMosquitto, dict[str, str]]) -> None:
    broker, credentials = secured
    for user, password in [(None, None), ("dev-a", "wrong"), ("dev-z", credentials["dev-a"])]:
        client = Client(broker.port, user, password)
        try:
            assert client.refused is not None, user
        finally:
            client.close()
