"""Faults under the controller itself: its managed Mosquitto dies, the controller is SIGKILLed, its broker goes silent.

Each test runs real processes (`tether serve`, `tetherd`, Mosquitto, a TCP proxy) and checks what a device that did
its work meanwhile ends up recorded as: never "timed out" for a silence the controller could not have heard.
"""

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import mqtt_link
from controller.fastmqtt.codec import Publish
from controller.mqtt_link import MqttLink
from shared.transport import BrokerUrl
from tests.e2e.harness import Agent, Controller, PersistentMosquitto, wait_for
from tests.e2e.test_faults import command_id_of, device_status, gated_script, wait_log
from tests.fakes import is_running
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SHORT_TIMEOUT_S = 3
"""The operations' execution timeout: short, so that code which counts an outage against a device fails fast."""


def gated_operation(device_id: str, runs: Path, gate: Path) -> dict[str, object]:
    return {
        "operation_type": "RUN_SHELL_SCRIPT",
        "operation_device_query": {"device_id": device_id},
        "arguments": {"script": gated_script(runs, gate)},
        "timeout_s": SHORT_TIMEOUT_S,
    }


def mosquitto_pids(controller: Controller) -> list[int]:
    """The Mosquitto processes running the config `tether serve` wrote for its embedded broker."""
    config = str(controller.work / "broker" / "mosquitto.conf")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if config.encode() in argv and is_running(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[Controller]:
    """`tether serve --embedded-broker mosquitto`; whatever Mosquitto it leaves behind is killed afterwards."""
    controller = Controller(tmp_path, None, "--embedded-broker", "mosquitto")
    try:
        yield controller
    finally:
        controller.stop()
        for pid in mosquitto_pids(controller):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_embedded_mosquitto_is_restarted_and_a_result_reached_meanwhile_is_stored(
    tmp_path: Path, managed: Controller
) -> None:
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    agent = Agent(tmp_path, managed.broker_url, "alpha")
    try:
        managed.wait_online("alpha")
        operation_id = managed.create(gated_operation("alpha", runs, gate))["id"]
        wait_for("alpha EXECUTING", lambda: device_status(managed, operation_id, "alpha") == "EXECUTING")
        command_id = command_id_of(managed, operation_id, "alpha")
        [first] = mosquitto_pids(managed)

        os.kill(first, signal.SIGKILL)
        wait_log("alpha noticing", agent.process.output, "MQTT connection to")
        gate.touch()  # the script ends during the outage
        wait_log("alpha finishing", agent.process.output, f"command {command_id} SUCCESSFUL")

        operation = managed.wait_finished(operation_id, timeout=30)
        result = managed.device_results(operation_id)["alpha"]
        assert (result["status"], result["failure_reason"]) == ("SUCCESSFUL", None), result
        assert operation["state"] == "COMPLETED"
        wait_for("/readyz 200 again", lambda: managed.http.get("/readyz").status_code == 200, timeout=20)
        [second] = mosquitto_pids(managed)
        assert second != first
        log = managed.process.output()
        assert log.count(f"mosquitto (pid {first}) was killed by SIGKILL; restarting it in 0.5 s") == 1, log
        assert log.count(f"mosquitto restarted (pid {second})") == 1, log
    finally:
        gate.touch()
        agent.stop()


def test_a_sigkilled_controller_takes_its_mosquitto_down_and_frees_the_port(managed: Controller) -> None:
    [broker] = mosquitto_pids(managed)

    managed.process.kill()

    wait_for("the controller's Mosquitto to exit", lambda: not is_running(broker), timeout=5)
    wait_for(f"MQTT port {managed.mqtt_port} free", lambda: port_is_free(managed.mqtt_port), timeout=5)


def test_no_device_times_out_while_the_controller_cannot_hear_its_external_broker(tmp_path: Path) -> None:
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    broker = PersistentMosquitto(tmp_path / "mosquitto").start()
    controller = Controller(tmp_path, broker_url=broker.url)
    agent = Agent(tmp_path, broker.url, "alpha")
    try:
        controller.wait_online("alpha")
        operation_id = controller.create(gated_operation("alpha", runs, gate))["id"]
        wait_for("alpha EXECUTING", lambda: device_status(controller, operation_id, "alpha") == "EXECUTING")
        command_id = command_id_of(controller, operation_id, "alpha")

        broker.stop()
        wait_log("alpha noticing", agent.process.output, "MQTT connection to")
        gate.touch()
        wait_log("alpha finishing offline", agent.process.output, f"command {command_id} SUCCESSFUL")
        time.sleep(SHORT_TIMEOUT_S + 2)  # the broker stays down well past the deadline
        assert device_status(controller, operation_id, "alpha") == "EXECUTING"
        broker.start()

        controller.wait_finished(operation_id, timeout=30)
        result = controller.device_results(operation_id)["alpha"]
        assert (result["status"], result["failure_reason"]) == ("SUCCESSFUL", None), result
    finally:
        gate.touch()
        agent.stop()
        controller.stop()
        broker.stop()


KEEPALIVE_S = 2


def test_a_broker_gone_silent_behind_a_proxy_is_noticed_within_one_and_a_half_keepalives_and_the_link_reconnects(
    mosquitto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_link, "KEEPALIVE_S", KEEPALIVE_S)
    with TcpProxy.to_url(mosquitto_url) as proxy:
        asyncio.run(_silent_broker_scenario(proxy))


async def _silent_broker_scenario(proxy: TcpProxy) -> None:
    received: list[Publish] = []
    arrived = asyncio.Event()

    def on_message(message: Publish) -> bool:
        received.append(message)
        arrived.set()
        return True  # dealt with for good: acknowledge it

    link = MqttLink(
        BrokerUrl.parse(proxy.url),
        identifier="controller-behind-a-proxy",
        subscriptions=["silence/#"],
        on_message=on_message,
    )
    running = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.wait_connected()
        await asyncio.sleep(KEEPALIVE_S)  # a few keep-alives answered: the connection is healthy

        proxy.freeze()
        frozen_at = time.monotonic()
        async with asyncio.timeout(3 * KEEPALIVE_S):
            while link.connected:  # noqa: ASYNC110 -- the link offers no event for losing its connection
                await asyncio.sleep(0.02)
        noticed_after = time.monotonic() - frozen_at
        assert noticed_after <= 1.5 * KEEPALIVE_S, noticed_after

        async with asyncio.timeout(10):
            await link.wait_connected()
        assert proxy.forwarded == 2
        await link.publish([("silence/after", b"heard")], retain=False)
        async with asyncio.timeout(5):
            await arrived.wait()
        assert [(message.topic, message.payload) for message in received] == [("silence/after", b"heard")]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def test_a_command_published_after_mosquittos_last_save_reaches_its_device_after_mosquitto_is_killed(
    tmp_path: Path, managed: Controller
) -> None:
    # Mosquitto saves its retained messages only now and then: one killed outright comes back without those published
    # since, here the command of a device that is offline. The controller publishes what is outstanding again.
    runs = tmp_path / "runs.txt"
    agent = Agent(tmp_path, managed.broker_url, "beta")
    managed.wait_online("beta")
    agent.stop()
    operation_id = managed.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "beta"},
            "arguments": {"script": f"echo ran >> {runs}"},
        }
    )["id"]
    wait_log("the command published", managed.process.output, f"operation {operation_id}: 1 command(s) published")
    [first] = mosquitto_pids(managed)
    os.kill(first, signal.SIGKILL)
    wait_for("mosquitto restarted", lambda: [p for p in mosquitto_pids(managed) if p != first], timeout=20)
    wait_for("/readyz 200 again", lambda: managed.http.get("/readyz").status_code == 200, timeout=20)
    agent.process = agent.start()
    try:
        operation = managed.wait_finished(operation_id, timeout=30)
        assert operation["state"] == "COMPLETED", operation
        assert managed.device_results(operation_id)["beta"]["status"] == "SUCCESSFUL"
        assert runs.read_text() == "ran\n"
        assert "1 outstanding command(s) published again: mosquitto restarted" in managed.process.output()
    finally:
        agent.stop()
