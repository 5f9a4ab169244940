"""The embedded amqtt broker under `tether serve --broker-auth`, attacked by a device with a valid login of its own, by
a stranger without one, and faulted by a controller kill: each test is one attempt and what stopped it."""

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from controller.amqtt_fixes import CONNECT_TIMEOUT_S
from shared.messages import StatusReport, encode, utc_now
from shared.operations import DeviceStatus
from tests.e2e.attacks.amqtt_logins import PREFIX, AmqttLogins
from tests.e2e.harness import Agent, Controller, restart_controller, wait_for
from tests.e2e.test_broker_acl import SETTLE_S, Client


def successful(command_id: str, device_id: str) -> bytes:
    report = StatusReport(
        command_id=command_id, device_id=device_id, status=DeviceStatus.SUCCESSFUL, timestamp=utc_now()
    )
    return encode(report)


def test_a_device_using_another_devices_or_the_controllers_client_id_is_refused_and_reads_nothing(
    amqtt_logins: AmqttLogins,
) -> None:
    amqtt_logins.register("dev-b")
    # dev-b's agent has a persistent session subscribed to its commands; it is offline when its command comes.
    dev_b = amqtt_logins.device("dev-b", clean_session=False)
    dev_b.subscribe(f"{PREFIX}/dev-b/commands/+")
    time.sleep(0.3)
    dev_b.close()
    amqtt_logins.lock("dev-b")
    intruders = [
        amqtt_logins.device("dev-a", client_id="tetherd-dev-b", clean_session=False),
        amqtt_logins.device("dev-a", client_id="tether-controller", clean_session=False),
    ]
    try:
        time.sleep(SETTLE_S)
        assert [intruder.topics() for intruder in intruders] == [[], []]
        assert [intruder.refused is not None for intruder in intruders] == [True, True]
    finally:
        for intruder in intruders:
            intruder.close()
    # The rightful owner still gets its session and its command, and the controller kept its connection.
    dev_b = amqtt_logins.device("dev-b", clean_session=False)
    try:
        wait_for("dev-b's own command", lambda: any("/dev-b/commands/" in t for t in dev_b.topics()), timeout=5)
    finally:
        dev_b.close()
    assert "lost or refused" not in amqtt_logins.controller.process.output()


def test_a_last_will_on_another_devices_status_is_refused_at_connect(amqtt_logins: AmqttLogins) -> None:
    amqtt_logins.register("dev-b")
    operation_id, command_id = amqtt_logins.lock("dev-b")
    forger = amqtt_logins.device("dev-a", will=(f"{PREFIX}/dev-b/status/{command_id}", successful(command_id, "dev-b")))
    try:
        refused = forger.refused
    finally:
        forger.drop()  # no DISCONNECT: the broker would publish the will now
    time.sleep(SETTLE_S)
    assert amqtt_logins.status_of(operation_id, "dev-b") == "PENDING"
    assert refused is not None
    # A will on its own topics is still a login's right: dev-a's agent announces itself offline that way.
    own = amqtt_logins.device("dev-a", will=(f"{PREFIX}/dev-a/presence", b'{"device_id": "dev-a", "state": "offline"}'))
    assert own.refused is None
    own.close()


def test_a_connect_with_a_wrong_password_never_disturbs_the_client_it_names(amqtt_logins: AmqttLogins) -> None:
    amqtt_logins.register("dev-b")
    operation_id, command_id = amqtt_logins.lock("dev-b")
    for clean_session in (True, False, True):
        stranger = Client(
            amqtt_logins.port, "tether-controller", "wrong", client_id="tether-controller", clean_session=clean_session
        )
        assert stranger.refused is not None
        stranger.close()
    dev_b = amqtt_logins.device("dev-b")
    try:
        dev_b.publish(f"{PREFIX}/dev-b/status/{command_id}", successful(command_id, "dev-b"))
        wait_for("the status stored", lambda: amqtt_logins.status_of(operation_id, "dev-b") == "SUCCESSFUL", timeout=5)
    finally:
        dev_b.close()
    assert "lost or refused" not in amqtt_logins.controller.process.output()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_connections_that_never_log_in_are_closed_and_release_their_file_descriptors(amqtt_logins: AmqttLogins) -> None:
    pid = amqtt_logins.controller.process.popen.pid
    before = open_fds(pid)
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", amqtt_logins.port), timeout=5):
            pass
    time.sleep(SETTLE_S)
    assert open_fds(pid) - before < 10

    silent = [socket.create_connection(("127.0.0.1", amqtt_logins.port), timeout=5) for _ in range(50)]
    try:
        started = time.monotonic()
        for sock in silent:
            sock.settimeout(max(0.1, started + CONNECT_TIMEOUT_S + 5 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):  # closed by the broker, by a FIN or a reset
                assert sock.recv(1) == b""
        assert time.monotonic() - started < CONNECT_TIMEOUT_S + 5
    finally:
        for sock in silent:
            sock.close()
    time.sleep(SETTLE_S)
    assert open_fds(pid) - before < 10


def test_a_command_for_a_device_offline_at_a_controller_kill_reaches_it_after_the_restart(tmp_path: Path) -> None:
    controller = Controller(tmp_path, None, "--embedded-broker", "amqtt")
    url = f"mqtt://127.0.0.1:{controller.mqtt_port}"
    agent = Agent(tmp_path, url, "dev-r")
    try:
        controller.wait_online("dev-r")
        agent.stop()
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "dev-r"}})
        wait_for(
            "the command dispatched",
            lambda: controller.device_results(created["id"])["dev-r"]["dispatch_state"] == "dispatched",
        )
        controller.process.kill()  # SIGKILL: the in-process broker's retained messages go with it
        restart_controller(controller)
        agent.process = agent.start()  # back 8 s later in the report; any time after the restart will do
        operation = controller.wait_finished(created["id"], timeout=20)
        assert operation["state"] == "COMPLETED", json.dumps(controller.device_results(created["id"]))
        assert len(agent.locks()) == 1
    finally:
        agent.stop()
        controller.stop()
