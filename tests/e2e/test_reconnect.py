"""Brokers restart and devices go offline: both programs reconnect on their own and nothing is lost or run twice."""

from pathlib import Path

import pytest

from controller.broker import ListenAddress, MosquittoBroker
from tests.e2e.harness import Agent, Controller, assert_lock_runs, wait_for
from tests.fixtures_brokers import broker_in_thread, free_port

pytestmark = pytest.mark.e2e


def test_both_sides_reconnect_after_a_broker_restart(tmp_path: Path) -> None:
    listen = ListenAddress("127.0.0.1", free_port())
    data = tmp_path / "mosquitto"
    with broker_in_thread(lambda: MosquittoBroker(listen, data)) as url:
        controller = Controller(tmp_path, broker_url=url)
        agent = Agent(tmp_path, url, "alpha")
        controller.wait_online("alpha")
    try:
        # The broker is down: the operation is accepted and waits for it.
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})
        assert created["state"] == "RESOLVED"
        with broker_in_thread(lambda: MosquittoBroker(listen, data)):
            operation = controller.wait_finished(created["id"], timeout=60)
            assert operation["state"] == "COMPLETED"
            assert operation["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 1
            assert agent.locks() == [["loginctl", "lock-sessions"]]
            assert agent.process.output().count("connected to") >= 2
            controller.wait_online("alpha")
    finally:
        agent.stop()
        controller.stop()


def test_a_device_offline_at_dispatch_runs_the_command_once_when_it_returns(tmp_path: Path, mosquitto_url: str) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    try:
        controller.wait_online("alpha")
        agent.stop()
        wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})
        wait_for("the command published", lambda: controller.device_results(created["id"])["alpha"]["dispatched_at"])
        agent.process = agent.start()
        operation = controller.wait_finished(created["id"])
        assert operation["state"] == "COMPLETED"
        agent.restart()
        controller.wait_online("alpha")
        assert agent.locks() == [["loginctl", "lock-sessions"]]
    finally:
        agent.stop()
        controller.stop()


def test_an_agent_whose_first_broker_is_down_connects_to_the_next_at_once(tmp_path: Path, mosquitto_url: str) -> None:
    down = f"mqtt://127.0.0.1:{free_port()}"
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, [down, mosquitto_url], "alpha")
    try:
        controller.wait_online("alpha")
        assert_lock_runs(controller, agent)
        log = agent.process.output()
        assert (
            f"MQTT connection to {down} lost ([Errno 111] Connection refused); trying {mosquitto_url} in 0.0 s" in log
        )
        assert f"connected to {mosquitto_url} as alpha" in log
    finally:
        agent.stop()
        controller.stop()
