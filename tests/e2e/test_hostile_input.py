"""Malformed and foreign messages through a real broker: both sides log and skip them, and nothing runs twice."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.harness import Agent, Controller, wait_for
from tests.fakes import FakeSession, logind

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, Agent, Agent, mqtt.Client]]:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    alpha = Agent(tmp_path, mosquitto_url, "alpha")
    beta = Agent(tmp_path, mosquitto_url, "beta")
    host, port = mosquitto_url.removeprefix("mqtt://").split(":")
    intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
    intruder.connect(host, int(port))
    intruder.loop_start()
    try:
        controller.wait_online("alpha", "beta")
        yield controller, alpha, beta, intruder
    finally:
        intruder.loop_stop()
        intruder.disconnect()
        alpha.stop()
        beta.stop()
        controller.stop()


def command(device_id: str, command_id: str, **overrides: object) -> bytes:
    body = {
        "command_id": command_id,
        "operation_id": "manual",
        "device_id": device_id,
        "operation_type": "LOCK",
        "issued_at": "2026-11-22T10:00:00Z",
        **overrides,
    }
    return json.dumps(body).encode()


def test_agent_drops_foreign_and_malformed_commands(setup: tuple[Controller, Agent, Agent, mqtt.Client]) -> None:
    _, alpha, beta, intruder = setup
    topic = "tether/v1/devices/alpha/commands/{}"
    intruder.publish(topic.format("c1"), command("beta", "c1"), qos=1).wait_for_publish(5)
    intruder.publish(topic.format("c2"), command("alpha", "c-other"), qos=1).wait_for_publish(5)
    intruder.publish(topic.format("c3"), b"{not json", qos=1).wait_for_publish(5)
    intruder.publish(topic.format("c4"), command("alpha", "c4", operation_type="TELEPORT"), qos=1).wait_for_publish(5)
    intruder.publish(topic.format("c5"), b"x" * 300_000, qos=1).wait_for_publish(5)
    intruder.publish(topic.format("ok"), command("alpha", "ok"), qos=1).wait_for_publish(5)
    intruder.publish(topic.format("ok"), command("alpha", "ok"), qos=1).wait_for_publish(5)
    wait_for("the valid LOCK", lambda: alpha.locks())
    time.sleep(0.5)
    assert alpha.locks() == [["loginctl", "lock-sessions"]]
    assert beta.locks() == []
    log = alpha.process.output()
    assert log.count("dropped a message") == 5, log
    assert alpha.process.popen.poll() is None


def test_controller_ignores_foreign_and_regressing_statuses(
    setup: tuple[Controller, Agent, Agent, mqtt.Client],
) -> None:
    controller, _, beta, intruder = setup
    beta.tools.add("loginctl", script=logind(FakeSession("2"), lock_s=1.5))
    created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "beta"}})
    wait_for("beta executing", lambda: controller.device_results(created["id"])["beta"]["status"] == "EXECUTING")
    command_id = controller.device_results(created["id"])["beta"]["command_id"]

    def status(device: str, body_device: str, state: str, **extra: object) -> None:
        body = {
            "command_id": command_id,
            "device_id": body_device,
            "status": state,
            "timestamp": "2026-11-22T10:00:00Z",
        }
        payload = json.dumps({**body, **extra}).encode()
        topic = f"tether/v1/devices/{device}/status/{command_id}"
        intruder.publish(topic, payload, qos=1).wait_for_publish(5)

    status("alpha", "alpha", "FAILED", failure_reason="forged by alpha")  # not alpha's command
    status("beta", "alpha", "FAILED", failure_reason="payload disagrees with topic")
    intruder.publish(f"tether/v1/devices/beta/status/{command_id}", b"[]", qos=1).wait_for_publish(5)
    operation = controller.wait_finished(created["id"])
    assert operation["state"] == "COMPLETED"
    result = controller.device_results(created["id"])["beta"]
    assert result["status"] == "SUCCESSFUL", result
    status("beta", "beta", "EXECUTING")  # a late status must not regress it
    status("beta", "beta", "FAILED", failure_reason="too late")
    time.sleep(0.5)
    assert controller.device_results(created["id"])["beta"]["status"] == "SUCCESSFUL"
    assert controller.process.popen.poll() is None
    log = controller.process.output()
    assert "was not sent to device 'alpha'" in log
    assert "payload names device 'alpha' but the topic names 'beta'" in log
    assert "already SUCCESSFUL; the first final status stands" in log
