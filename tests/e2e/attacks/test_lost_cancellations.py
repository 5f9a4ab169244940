"""Cancellations that the broker lost: a cancellation is QoS 1 and not retained, so an offline device gets it only
from its persistent session on the broker. A broker that loses its sessions (the embedded amqtt restarted with the
controller) must not let a device run a command it was told not to."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Controller, restart_controller, wait_for
from tests.e2e.test_faults import device_status, gated_script, script_operation, wait_log
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

RECONNECT_S = 60.0
"""How long a reconnecting agent and the re-sent cancellation may take: the agent's backoff grows to 30 s."""


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    running = Controller(tmp_path, None, "--embedded-broker", "amqtt")
    yield running
    running.stop()


@pytest.fixture
def proxy(controller: Controller) -> Iterator[TcpProxy]:
    """The agent's way to the broker, which the test cuts to take the device offline."""
    with TcpProxy.to_url(controller.broker_url) as running:
        yield running


def cancel_offline_then_lose_the_broker(controller: Controller, proxy: TcpProxy, agent: Agent, operation: str) -> None:
    """Take the device offline, cancel `operation` (the broker keeps the cancellation in the device's session), then
    kill the controller with its embedded broker and every session in it, start it again and let the device back."""
    proxy.cut("refuse")
    wait_log("the agent noticing", agent.process.output, "MQTT connection to")
    wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
    response = controller.http.post(f"/v0/operations/{operation}/cancel/")
    assert response.status_code == 200, response.text
    time.sleep(2)  # the supervisor publishes the cancellation within its one-second tick
    controller.process.kill()
    restart_controller(controller)
    proxy.restore()


def test_a_command_cancelled_while_its_device_was_offline_does_not_run_after_the_broker_lost_its_sessions(
    tmp_path: Path, controller: Controller, proxy: TcpProxy
) -> None:
    runs, gate, marker = tmp_path / "runs.txt", tmp_path / "gate", tmp_path / "cancelled-ran"
    agent = Agent(tmp_path, proxy.url, "alpha")
    try:
        controller.wait_online("alpha")
        # The first script holds the agent's one runner, so the second waits in the device's queue.
        blocker = controller.create(script_operation({"device_id": "alpha"}, gated_script(runs, gate)))["id"]
        wait_for("the blocker executing", lambda: device_status(controller, blocker, "alpha") == "EXECUTING")
        queued = controller.create(script_operation({"device_id": "alpha"}, f"touch {marker}\n"))["id"]
        wait_for("the device holding it", lambda: controller.device_results(queued)["alpha"]["received_at"])

        cancel_offline_then_lose_the_broker(controller, proxy, agent, queued)

        wait_for(
            "the device confirming the cancellation",
            lambda: device_status(controller, queued, "alpha") == "FAILED",
            timeout=RECONNECT_S,
        )
        gate.touch()
        wait_for("the blocker finishing", lambda: device_status(controller, blocker, "alpha") == "SUCCESSFUL")
        time.sleep(1)
        assert not marker.exists(), "the cancelled script ran"
        result = controller.device_results(queued)["alpha"]
        assert (result["status"], result["failure_reason"]) == ("FAILED", "cancelled by ops")
        assert controller.wait_finished(queued)["state"] == "FAILED"
    finally:
        gate.touch()
        agent.stop()


def test_a_script_cancelled_while_its_device_was_offline_is_stopped_after_the_broker_lost_its_sessions(
    tmp_path: Path, controller: Controller, proxy: TcpProxy
) -> None:
    runs, gate, marker = tmp_path / "runs.txt", tmp_path / "gate", tmp_path / "finished"
    agent = Agent(tmp_path, proxy.url, "alpha")
    try:
        controller.wait_online("alpha")
        script = gated_script(runs, gate) + f"touch {marker}\n"
        running = controller.create(script_operation({"device_id": "alpha"}, script))["id"]
        wait_for("the script executing", lambda: device_status(controller, running, "alpha") == "EXECUTING")

        cancel_offline_then_lose_the_broker(controller, proxy, agent, running)

        wait_for(
            "the device stopping the script",
            lambda: device_status(controller, running, "alpha") == "FAILED",
            timeout=RECONNECT_S,
        )
        gate.touch()
        time.sleep(1)
        assert not marker.exists(), "the cancelled script went on to its end"
        result = controller.device_results(running)["alpha"]
        assert (result["status"], result["failure_reason"]) == ("FAILED", "cancelled by ops")
    finally:
        gate.touch()
        agent.stop()
