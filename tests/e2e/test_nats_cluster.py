"""Tether on a three-node NATS cluster (tests/fixtures_nats.py): agents and the controller fail over when their node
dies mid-operation, and the two parts of the contract NATS does not keep (dots in ids, `$share`) are shown.

In the first test the controller is on node 1; each agent is given every node, its own first. Node 2, where two of the
three agents are, is SIGKILLed while every device runs its script: those two reconnect to another node with the same
persistent session, deliver the final statuses they kept, and no command runs twice.
"""

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.controller.test_broker import connect
from tests.e2e.harness import Agent, Controller, retained, wait_for
from tests.e2e.test_faults import counts, expected_counts, gated_script, runs_on, script_operation
from tests.fixtures_nats import NatsCluster

pytestmark = pytest.mark.e2e

FAILOVER_TIMEOUT_S = 60.0
"""Node kill to status stored: the survivors take 6-8 s to elect a new JetStream meta leader, CONNECTs wait for it."""
COMMANDS = "tether/v1/devices/+/commands/+"


def test_agents_on_a_killed_node_fail_over_and_the_operation_completes_once_each(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    first, second, third = nats_cluster.mqtt_urls
    controller = Controller(tmp_path, broker_url=first)
    # Two agents on node 2, one on node 3; each lists every node, its own first.
    agents = {
        "n2-a": Agent(tmp_path, [second, third, first], "n2-a"),
        "n2-b": Agent(tmp_path, [second, first, third], "n2-b"),
        "n3-a": Agent(tmp_path, [third, first, second], "n3-a"),
    }
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    try:
        controller.wait_online(*agents)
        created = controller.create(script_operation({"device_id": {"$in": list(agents)}}, gated_script(runs, gate)))
        wait_for("every device running its script", lambda: runs.exists() and len(runs.read_text().splitlines()) == 3)

        killed = time.monotonic()
        nats_cluster.kill(1)
        gate.touch()  # the scripts end while their node is gone: the statuses wait in the agents' journals
        moved = {device_id: agents[device_id] for device_id in ("n2-a", "n2-b")}
        reconnected: dict[str, float] = {}
        stored: dict[str, float] = {}
        deadline = killed + FAILOVER_TIMEOUT_S
        while len(reconnected) < len(moved) or len(stored) < len(agents):
            assert time.monotonic() < deadline, f"after {FAILOVER_TIMEOUT_S} s: {reconnected=} {stored=}"
            now = time.monotonic()
            for device_id, agent in moved.items():
                if device_id not in reconnected and agent.process.output().count("connected to") >= 2:
                    reconnected[device_id] = now - killed
            for device_id, result in controller.device_results(created["id"]).items():
                if device_id not in stored and result["status"] == "SUCCESSFUL":
                    stored[device_id] = now - killed
            time.sleep(0.1)
        print(f"\nfailover after SIGKILL of node 2: reconnected {reconnected}, status stored {stored}")

        operation = controller.wait_finished(created["id"], timeout=FAILOVER_TIMEOUT_S)
        assert operation["state"] == "COMPLETED"
        assert counts(operation) == expected_counts(resolved=3, success=3)
        assert {
            device_id: result["status"] for device_id, result in controller.device_results(created["id"]).items()
        } == {device_id: "SUCCESSFUL" for device_id in agents}
        for device_id in moved:
            # Wherever it landed: a CONNECT to a survivor waits (and may time out) until the new leader is elected.
            connections = [line for line in agents[device_id].process.output().splitlines() if "connected to" in line]
            assert len(connections) == 2
            assert f"connected to {second} as {device_id}" in connections[0]
            assert any(f"connected to {url} as {device_id}" in connections[1] for url in (first, third))
        # The retained commands were cleared through node 1; a fresh subscriber on node 3 gets none of them again.
        wait_for("the retained commands cleared", lambda: retained(third, COMMANDS) == {}, timeout=30)
        assert {device_id: runs_on(runs, device_id) for device_id in agents} == dict.fromkeys(agents, 1)
    finally:
        for agent in agents.values():
            agent.stop()
        controller.stop()


def test_a_device_id_with_a_dot_cannot_use_nats_whose_mqtt_refuses_dots_in_topics(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """Tether allows '.' in device ids; nats-server 2.9 closes a connection that publishes to a topic with one (a
    subject separator in NATS). docs/brokers.md#nats-tested says to keep dots out of device ids there."""
    first, second, _ = nats_cluster.mqtt_urls
    controller = Controller(tmp_path, broker_url=first)
    dotted, plain = Agent(tmp_path, [second, first], "lab.d1"), Agent(tmp_path, [second, first], "lab:d1")
    try:
        controller.wait_online("lab:d1")
        wait_for(
            "the dotted device's connections closed on both nodes",
            lambda: dotted.process.output().count("MQTT connection to") >= 2,
        )
        assert "connected to" not in dotted.process.output()
        assert [device["device_id"] for device in controller.get("/v0/devices/")["results"]] == ["lab:d1"]
    finally:
        dotted.stop()
        plain.stop()
        controller.stop()


def test_the_controller_on_a_killed_node_fails_over_and_hears_what_it_missed(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """The controller and one agent on node 2, another agent on node 1: node 2 dies while both devices run their
    scripts. The statuses published while the controller was moving wait in its persistent session."""
    first, second, third = nats_cluster.mqtt_urls
    controller = Controller(tmp_path, second, "--broker", third, "--broker", first)
    agents = {"n2-a": Agent(tmp_path, [second, third, first], "n2-a"), "n1-a": Agent(tmp_path, [first], "n1-a")}
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    try:
        controller.wait_online(*agents)
        created = controller.create(script_operation({"device_id": {"$in": list(agents)}}, gated_script(runs, gate)))
        wait_for("every device running its script", lambda: runs.exists() and len(runs.read_text().splitlines()) == 2)
        nats_cluster.kill(1)
        gate.touch()

        operation = controller.wait_finished(created["id"], timeout=FAILOVER_TIMEOUT_S)
        assert operation["state"] == "COMPLETED"
        assert counts(operation) == expected_counts(resolved=2, success=2)
        log = controller.process.output()
        assert f"MQTT connection to {second} lost or refused" in log
        assert f"connected to {third}" in log or f"connected to {first}" in log
        assert {device_id: runs_on(runs, device_id) for device_id in agents} == dict.fromkeys(agents, 1)
    finally:
        for agent in agents.values():
            agent.stop()
        controller.stop()


def test_a_shared_subscription_is_granted_but_gets_nothing_on_nats(nats_cluster: NatsCluster) -> None:
    """nats-server 2.9 has no `$share`: the SUBSCRIBE succeeds and nothing is ever delivered on it, without an error.
    docs/brokers.md#nats-tested says so for deployments that would share ingest between controller replicas."""
    first, second, _ = nats_cluster.mqtt_urls
    status, presence = "tether/v1/devices/d1/status/c1", "tether/v1/devices/d1/presence"
    with ExitStack() as clients:
        replica = connect(clients, second, "replica")
        replica.subscribe("$share/ingest/tether/v1/devices/+/status/+")
        replica.subscribe("tether/v1/devices/+/presence")
        device = connect(clients, first, "device")
        device.publish(status, b"{}")
        device.publish(presence, b"{}")
        received = replica.wait_for(presence)
        time.sleep(1)  # anything on the shared subscription would have come by now
        received += replica.drain()
    assert [(message.topic, message.payload) for message in received] == [(presence, b"{}")]
