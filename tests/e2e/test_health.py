"""Health on real processes: READY=1 once connected and announced (the agent) or serving (the controller), then
watchdog pings, read off a real notification socket as systemd would; and the agent's health in its presence."""

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Controller, retained, wait_for


class NotifySocket:
    """The datagram socket systemd listens on for a unit's notifications."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def read_until(self, wanted: str, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            if any(wanted in message for message in self.messages):
                return self.messages
        raise AssertionError(f"no {wanted!r} in {self.messages}")

    def read_for(self, seconds: float) -> list[str]:
        """Everything that arrives in the next `seconds`."""
        received, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        self.messages += received
        return received


@pytest.fixture
def notifications(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    yield listener
    listener.sock.close()


def test_the_agent_is_ready_once_connected_and_pings_its_watchdog(
    tmp_path: Path, mosquitto_url: str, notifications: NotifySocket
) -> None:
    agent = Agent(tmp_path, mosquitto_url, "unit-1")
    try:
        messages = notifications.read_until("READY=1")
        ready = next(message for message in messages if "READY=1" in message)
        assert f"STATUS=connected to {mosquitto_url} as unit-1" in ready
        assert "connected to" in agent.process.output()  # it was ready only once the session was up
        assert sum("WATCHDOG=1" in m for m in notifications.read_for(1.0)) >= 3
    finally:
        agent.stop()


def test_the_controller_is_ready_once_its_api_answers(
    tmp_path: Path, mosquitto_url: str, notifications: NotifySocket
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    try:
        messages = notifications.read_until("READY=1")
        assert any(f"STATUS=REST API on 127.0.0.1:{controller.http_port}" in m for m in messages)
        notifications.read_until("WATCHDOG=1")
    finally:
        controller.stop()


def test_the_agent_reports_its_health_in_its_retained_presence(tmp_path: Path, mosquitto_url: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("health_interval_s = 0.3\n")
    agent = Agent(tmp_path, mosquitto_url, "healthy", "--config", str(config))
    try:

        def reported() -> dict[str, object] | None:
            payload = retained(mosquitto_url, "tether/v1/devices/healthy/presence", settle=0.3).get(
                "tether/v1/devices/healthy/presence"
            )
            body = json.loads(payload) if payload else None
            return body if body and body.get("health", {}).get("uptime_s", 0) > 0.5 else None

        presence = wait_for("a refreshed presence", reported, timeout=20)
        health = presence["health"]
        assert presence["state"] == "online"
        assert isinstance(health, dict)
        assert health["queued"] == 0
        assert "running" not in health  # no command executing: the member is left out
        assert health["undelivered"] == 0
        assert 5_000_000 < health["rss_bytes"] < 500_000_000
    finally:
        agent.stop()


def test_json_logs_name_the_device_operation_and_command_of_each_line_about_them(
    tmp_path: Path, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "logged", "--log-format", "json")
    try:
        controller.wait_online("logged")
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "logged"}})
        controller.wait_finished(created["id"])
        command_id = controller.device_results(created["id"])["logged"]["command_id"]
    finally:
        agent.stop()
        controller.stop()
    logged = [json.loads(line) for line in agent.process.output().splitlines()]
    per_device = [line for line in logged if line["logger"] in ("agent.session", "agent.runner")]
    assert per_device
    assert all(line.get("device_id") == "logged" for line in per_device), per_device
    about_it = [line for line in logged if command_id in line["message"]]
    assert len(about_it) >= 3  # queued, executing, SUCCESSFUL
    assert all(line["command_id"] == command_id and line["operation_id"] == created["id"] for line in about_it)
