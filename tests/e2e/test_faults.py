"""Faults on real processes and real brokers: nothing stuck, nothing run twice, nothing lost.

Agents and the controller are killed (SIGKILL) or restarted (SIGTERM), the broker restarts, and the network between an
agent and the broker is cut (tests/tcp_proxy.py). Each test checks the final per-device statuses, the operation's
stats and how many times each script or fake tool really ran.
"""

import contextlib
import json
import os
import re
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.harness import (
    Agent,
    Controller,
    PersistentMosquitto,
    line_count,
    restart_controller,
    retained,
    wait_for,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

PREFIX = "tether/v1/devices"


# --- helpers -------------------------------------------------------------------------------------------------------


def script_operation(query: dict[str, Any], script: str) -> dict[str, Any]:
    return {"operation_type": "RUN_SHELL_SCRIPT", "operation_device_query": query, "arguments": {"script": script}}


def counts(operation: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = operation["operation_stats"]["device_operation_statuses_count"]
    return result


def expected_counts(*, resolved: int, success: int = 0, failed: int = 0) -> dict[str, int]:
    return {
        "resolved_device_count": resolved,
        "dispatched_device_count": resolved,
        "dispatch_failed_count": 0,
        "failed_device_count": failed,
        "success_device_count": success,
    }


def device_status(controller: Controller, operation_id: str, device_id: str) -> str:
    status: str = controller.device_results(operation_id)[device_id]["status"]
    return status


def command_id_of(controller: Controller, operation_id: str, device_id: str) -> str:
    command_id: str = controller.device_results(operation_id)[device_id]["command_id"]
    return command_id


def log_count(log: Callable[[], str], text: str) -> int:
    return log().count(text)


def wait_log(what: str, log: Callable[[], str], text: str, at_least: int = 1, timeout: float = 15.0) -> None:
    wait_for(f"{what} ({text!r} x{at_least} in the log)", lambda: log_count(log, text) >= at_least, timeout=timeout)


def kill_script_group(pid_file: Path) -> None:
    """End a script that outlived a SIGKILL-ed agent: it leads its own process group, whose id it wrote down."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


def gated_script(runs: Path, gate: Path) -> str:
    """Records each run (with its working directory, which names the device), then waits for `gate` to exist."""
    return f'echo "$PWD" >> {runs}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n'


def runs_on(runs: Path, device_id: str) -> int:
    """How many times the gated script ran on `device_id` (its work directory is under the agent's own)."""
    if not runs.exists():
        return 0
    return sum(1 for line in runs.read_text().splitlines() if f"/{device_id}/" in line)


def stable_fields(result: dict[str, Any]) -> dict[str, Any]:
    """A device result without `updated_at`, which a harmless repeated status may touch."""
    return {key: value for key, value in result.items() if key != "updated_at"}


@contextlib.contextmanager
def probe(broker_url: str, topic_filter: str) -> Iterator[dict[str, list[bytes]]]:
    """Every non-empty message published under `topic_filter` while the block runs, by topic."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    seen: dict[str, list[bytes]] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            seen.setdefault(message.topic, []).append(bytes(message.payload))

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(host, int(port))
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    try:
        assert subscribed.wait(5), "the probe could not subscribe"
        yield seen
    finally:
        client.loop_stop()
        client.disconnect()


def publish_raw(broker_url: str, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish each (topic, payload) once, QoS 1, not retained, from a throwaway client."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{time.monotonic_ns()}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


class SimulatedFleet:
    """Many devices in the test process, one paho client speaking the device side of docs/mqtt-api.md.

    Each device announces itself (retained), says it is online (retained) and subscribes to its command topic. With
    `answer`, it runs each command id once (PENDING, EXECUTING, SUCCESSFUL) and, like the agent, answers a command id
    it has already run by sending its final status again. It counts what it receives by device and command id.
    """

    def __init__(
        self,
        broker_url: str,
        device_ids: Sequence[str],
        *,
        tag: str,
        capabilities: Sequence[str],
        answer: bool = True,
    ) -> None:
        self.device_ids = list(device_ids)
        self.answer = answer
        self.holding = False
        """While True, commands are counted but their answers wait for `release()`."""
        self._held: list[tuple[str, str]] = []
        self.on_command: Callable[[int], None] | None = None
        """Called on the network thread with the number of distinct commands received, after each new one."""
        self.lock = threading.Lock()
        self.received: Counter[tuple[str, str]] = Counter()
        """(device id, command id) -> how many times the command message arrived."""
        self.executed: Counter[tuple[str, str]] = Counter()
        """(device id, command id) -> how many times the device ran it (never more than once, if all is well)."""
        self.final_reports: dict[str, bytes] = {}
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{time.monotonic_ns()}")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self._acks: set[int] = set()
        self._acked = threading.Condition()
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, int(port))
        self.client.loop_start()
        now = _now()
        for device_id in self.device_ids:
            announcement = {
                "device_id": device_id,
                "platform": "linux",
                "agent_version": "0.0.0-sim",
                "capabilities": list(capabilities),
                "tags": [tag],
                "announced_at": now,
            }
            self.publish(f"{PREFIX}/{device_id}/announce", json.dumps(announcement).encode(), retain=True)
            self.publish(f"{PREFIX}/{device_id}/presence", _json(device_id=device_id, state="online"), retain=True)
        chunk = 100
        for start in range(0, len(self.device_ids), chunk):
            filters = [(f"{PREFIX}/{d}/commands/+", 1) for d in self.device_ids[start : start + chunk]]
            _, mid = self.client.subscribe(filters)
            with self._acked:
                assert self._acked.wait_for(partial(self._acks.__contains__, mid), 10), "the fleet could not subscribe"

    def close(self) -> None:
        for device_id in self.device_ids:
            self.publish(f"{PREFIX}/{device_id}/presence", _json(device_id=device_id, state="offline"), retain=True)
        self.client.loop_stop()
        self.client.disconnect()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def status(self, device_id: str, command_id: str, status: str, **extra: Any) -> bytes:
        """Publish a status report on `device_id`'s status topic for `command_id`; return the payload sent."""
        body = {"command_id": command_id, "device_id": device_id, "status": status, "timestamp": _now(), **extra}
        payload = json.dumps(body).encode()
        self.publish(f"{PREFIX}/{device_id}/status/{command_id}", payload)
        return payload

    def commands_of(self, device_id: str) -> set[str]:
        with self.lock:
            return {command for (device, command) in self.received if device == device_id}

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, mid: int, *_rest: object) -> None:
        with self._acked:
            self._acks.add(mid)
            self._acked.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        _, _, device_id, _, command_id = message.topic.rsplit("/", 4)
        if not message.payload:
            return  # the controller cleared a finished command
        command = json.loads(message.payload)
        assert command["device_id"] == device_id, command
        assert command["command_id"] == command_id, command
        key = (device_id, command_id)
        with self.lock:
            first = key not in self.received
            self.received[key] += 1
            distinct = len(self.received)
            run = self.answer and not self.executed[key]
            if run:
                self.executed[key] += 1
                if self.holding:
                    self._held.append(key)
                    run = False
        if first and self.on_command is not None:
            self.on_command(distinct)
        if run:
            self._run(device_id, command_id)
        elif self.answer and command_id in self.final_reports:
            self.publish(f"{PREFIX}/{device_id}/status/{command_id}", self.final_reports[command_id])

    def release(self) -> None:
        """Stop holding answers, and answer every command that arrived while they were held."""
        with self.lock:
            self.holding = False
            held, self._held = self._held, []
        for device_id, command_id in held:
            self._run(device_id, command_id)

    def _run(self, device_id: str, command_id: str) -> None:
        self.status(device_id, command_id, "PENDING")
        self.status(device_id, command_id, "EXECUTING")
        self.final_reports[command_id] = self.status(device_id, command_id, "SUCCESSFUL", result={"sim": True})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() // 1_000_000 % 1000:03d}Z"


def _json(**body: Any) -> bytes:
    return json.dumps(body).encode()


def wait_registered(controller: Controller, count: int, tag: str) -> None:
    def registered() -> bool:
        devices = controller.get("/v0/devices/", online="true", limit=1000)["results"]
        return sum(1 for d in devices if tag in d["tags"]) >= count

    wait_for(f"{count} simulated devices registered and online", registered, timeout=20)


# --- 1. agent killed while executing -------------------------------------------------------------------------------


def test_agent_killed_while_executing_reports_failed_after_restart_and_never_runs_it_again(
    tmp_path: Path, mosquitto_url: str, alpha: tuple[Controller, Agent]
) -> None:
    runs, pid_file = tmp_path / "runs.txt", tmp_path / "script.pid"
    controller, agent = alpha
    try:
        script = f"echo run >> {runs}\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\nsleep 30\n"
        operation_id = controller.create(script_operation({"device_id": "alpha"}, script))["id"]
        wait_for("the script running", lambda: pid_file.exists())
        wait_for("alpha EXECUTING", lambda: device_status(controller, operation_id, "alpha") == "EXECUTING")

        agent.process.kill()
        agent.process = agent.start()

        operation = controller.wait_finished(operation_id, timeout=20)
        result = controller.device_results(operation_id)["alpha"]
        assert result["status"] == "FAILED", result
        assert result["failure_reason"] == "agent restarted during execution; the processes it had started were stopped"
        assert operation["state"] == "COMPLETED"
        assert counts(operation) == expected_counts(resolved=1, failed=1)
        # Never again: not after the restart, nor after one more.
        agent.restart()
        wait_log("the agent connected a third time", agent.process.output, "connected to", at_least=3)
        time.sleep(0.5)
        assert line_count(runs) == 1
        assert retained(mosquitto_url, f"{PREFIX}/alpha/commands/+") == {}
        assert counts(controller.get(f"/v0/operations/{operation_id}/")) == expected_counts(resolved=1, failed=1)
    finally:
        kill_script_group(pid_file)


def test_command_queued_behind_a_running_one_runs_once_after_the_agent_is_killed(
    tmp_path: Path, mosquitto_url: str, alpha: tuple[Controller, Agent]
) -> None:
    first_runs, second_runs, pid_file = tmp_path / "first.txt", tmp_path / "second.txt", tmp_path / "script.pid"
    controller, agent = alpha
    try:
        long_script = f"echo run >> {first_runs}\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\nsleep 30\n"
        first = controller.create(script_operation({"device_id": "alpha"}, long_script))["id"]
        wait_for("the first script running", lambda: pid_file.exists())
        second = controller.create(script_operation({"device_id": "alpha"}, f"echo run >> {second_runs}\n"))["id"]
        wait_for("the second command acknowledged", lambda: controller.device_results(second)["alpha"]["received_at"])
        assert device_status(controller, second, "alpha") == "PENDING"

        agent.process.kill()
        agent.process = agent.start()

        first_operation = controller.wait_finished(first, timeout=20)
        second_operation = controller.wait_finished(second, timeout=20)
        assert controller.device_results(first)["alpha"]["failure_reason"] == (
            "agent restarted during execution; the processes it had started were stopped"
        )
        assert device_status(controller, second, "alpha") == "SUCCESSFUL"
        assert counts(first_operation) == expected_counts(resolved=1, failed=1)
        assert counts(second_operation) == expected_counts(resolved=1, success=1)
        time.sleep(0.5)
        assert (line_count(first_runs), line_count(second_runs)) == (1, 1)
        assert retained(mosquitto_url, f"{PREFIX}/alpha/commands/+") == {}
    finally:
        kill_script_group(pid_file)


# --- 2. agent restarted after finishing ----------------------------------------------------------------------------


def test_agent_restarted_after_finishing_does_not_run_the_command_again_even_if_it_is_redelivered(
    tmp_path: Path, mosquitto_url: str, alpha: tuple[Controller, Agent]
) -> None:
    runs = tmp_path / "runs.txt"
    controller, agent = alpha
    with probe(mosquitto_url, f"{PREFIX}/alpha/commands/+") as commands:
        script = controller.create(script_operation({"device_id": "alpha"}, f"echo run >> {runs}\n"))["id"]
        lock = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})["id"]
        operations = {op: controller.wait_finished(op) for op in (script, lock)}
    results = {op: controller.device_results(op)["alpha"] for op in (script, lock)}
    assert [r["status"] for r in results.values()] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert all(counts(o) == expected_counts(resolved=1, success=1) for o in operations.values())
    assert len(commands) == 2

    agent.restart()
    wait_log("the agent reconnected", agent.process.output, "connected to", at_least=2)
    # The broker redelivers both commands, as it would had the controller missed the final statuses.
    publish_raw(mosquitto_url, [(topic, payloads[0]) for topic, payloads in commands.items()])
    wait_log("both final statuses re-sent", agent.process.output, "already finished; re-sending", at_least=2)
    time.sleep(0.5)

    assert line_count(runs) == 1
    assert agent.locks() == [["loginctl", "lock-sessions"]]
    for op in (script, lock):
        assert controller.get(f"/v0/operations/{op}/") == operations[op]
        assert stable_fields(controller.device_results(op)["alpha"]) == stable_fields(results[op])


# --- 3. device offline at dispatch ---------------------------------------------------------------------------------


def test_device_killed_before_dispatch_runs_the_command_exactly_once_when_it_returns(
    tmp_path: Path, mosquitto_url: str, alpha: tuple[Controller, Agent]
) -> None:
    runs = tmp_path / "runs.txt"
    controller, agent = alpha
    agent.process.kill()  # no goodbye: the broker's last will says offline
    wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
    operation_id = controller.create(script_operation({"device_id": "alpha"}, f"echo run >> {runs}\n"))["id"]
    wait_for("the command published", lambda: controller.device_results(operation_id)["alpha"]["dispatched_at"])
    assert len(retained(mosquitto_url, f"{PREFIX}/alpha/commands/+", settle=0.5)) == 1
    assert line_count(runs) == 0

    agent.process = agent.start()
    operation = controller.wait_finished(operation_id)
    assert operation["state"] == "COMPLETED"
    assert device_status(controller, operation_id, "alpha") == "SUCCESSFUL"
    assert counts(operation) == expected_counts(resolved=1, success=1)

    agent.process.kill()
    agent.process = agent.start()
    wait_log("the agent reconnected", agent.process.output, "connected to", at_least=3)
    time.sleep(0.5)
    assert line_count(runs) == 1
    assert retained(mosquitto_url, f"{PREFIX}/alpha/commands/+") == {}
    assert counts(controller.get(f"/v0/operations/{operation_id}/")) == expected_counts(resolved=1, success=1)


# --- 4. controller killed mid-dispatch ------------------------------------------------------------------------------

FLEET_SIZE = 500


def undispatched(db: Path, operation_id: str) -> int:
    """Commands of the operation that the (dead) controller had not recorded as handed to the broker."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM device_operations WHERE operation_id = ? AND dispatch_state = 'waiting'",
            (operation_id,),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


@pytest.mark.parametrize(
    ("rollout", "kill_after"),
    [
        pytest.param(None, 1, id="all-at-once-killed-as-the-first-command-arrives"),
        pytest.param({"rate_per_minute": 12000}, 100, id="paced-killed-after-100-commands"),
    ],
)
def test_controller_killed_mid_dispatch_to_500_devices_completes_each_exactly_once_after_restart(
    tmp_path: Path, mosquitto_url: str, rollout: dict[str, int] | None, kill_after: int
) -> None:
    device_ids = [f"sim-{n:03d}" for n in range(FLEET_SIZE)]
    # The controller dispatches 500 commands in milliseconds; through a thin link (~100 KB/s, two seconds for them
    # all) the kill at the first command to arrive lands in the middle of the dispatch, as the test means it to.
    link = TcpProxy.to_url(mosquitto_url, upstream_bytes_per_s=100_000)
    controller = Controller(tmp_path, broker_url=link.url)
    fleet = SimulatedFleet(mosquitto_url, device_ids, tag="fleet", capabilities=["LOCK"])
    try:
        wait_registered(controller, FLEET_SIZE, "fleet")
        killed = threading.Event()

        def kill_controller(distinct: int) -> None:
            if distinct >= kill_after and not killed.is_set():
                os.kill(controller.process.popen.pid, signal.SIGKILL)  # on the fleet's thread: no delay
                killed.set()

        fleet.on_command = kill_controller
        # The fleet answers only once the controller is dead: a status in flight at the kill could be lost to another
        # fault (see the test below) and would make this one flaky.
        fleet.holding = True
        body: dict[str, Any] = {"operation_type": "LOCK", "operation_device_query": {"tags": "fleet"}}
        if rollout is not None:
            body["rollout"] = rollout
        operation_id = controller.create(body)["id"]
        assert killed.wait(10), "no command reached the fleet"
        controller.process.kill()  # reap it
        time.sleep(0.5)  # what was already on its way to the fleet arrives
        fleet.release()  # the broker keeps these statuses for the controller's persistent session
        with fleet.lock:
            received_before_restart = len(fleet.received)
        waiting = undispatched(controller.db, operation_id)
        assert waiting > 0, "the controller was killed after it had recorded the whole dispatch"
        if rollout is not None:
            assert kill_after <= received_before_restart < FLEET_SIZE

        restart_controller(controller)
        try:
            operation = controller.wait_finished(operation_id, timeout=40)
        except AssertionError as err:
            raise AssertionError(f"{err}: {fleet_report(controller, operation_id, fleet)}") from None

        assert operation["state"] == "COMPLETED", operation
        assert counts(operation) == expected_counts(resolved=FLEET_SIZE, success=FLEET_SIZE)
        results = controller.device_results(operation_id)
        assert {d: r["status"] for d, r in results.items()} == dict.fromkeys(device_ids, "SUCCESSFUL")
        # Each device received its own command id and no other (perhaps twice, if it was published again)...
        assert {d: fleet.commands_of(d) for d in device_ids} == {d: {results[d]["command_id"]} for d in device_ids}
        with fleet.lock:  # ...and ran it once.
            assert len(fleet.executed) == FLEET_SIZE
            assert set(fleet.executed.values()) == {1}
        # The clears follow the last statuses through the thin link.
        wait_for("every retained command cleared", lambda: not retained(mosquitto_url, f"{PREFIX}/+/commands/+"))
    finally:
        fleet.close()
        controller.stop()
        link.close()


def fleet_report(controller: Controller, operation_id: str, fleet: SimulatedFleet) -> str:
    """What the controller and the fleet each saw of the devices that have not finished, for a failure message."""
    results = controller.device_results(operation_id)
    stuck = {d: r for d, r in results.items() if r["status"] not in ("SUCCESSFUL", "FAILED")}
    with fleet.lock:
        seen = {d: {c: n for (device, c), n in fleet.received.items() if device == d} for d in stuck}
    lines = [f"{d}: {r['status']} dispatch={r['dispatch_state']} fleet received {seen[d]}" for d, r in stuck.items()]
    statuses = Counter(r["status"] for r in results.values())
    return f"statuses {dict(statuses)}; not finished:\n" + "\n".join(lines[:20])


def delivered_to_controller(mosquitto_log: str, since: int) -> set[str]:
    """Packet ids of the status messages Mosquitto sent the controller."""
    return set(
        re.findall(
            r"Sending PUBLISH to tether-controller \(d\d, q1, r\d, m(\d+), '[^']*/status/", mosquitto_log[since:]
        )
    )


def acknowledged_by_controller(mosquitto_log: str, since: int) -> int:
    """Status messages that Mosquitto delivered to the controller and the controller acknowledged (PUBACK)."""
    acked = re.findall(r"Received PUBACK from tether-controller \(Mid: (\d+)", mosquitto_log[since:])
    sent = delivered_to_controller(mosquitto_log, since)
    return sum(1 for mid in acked if mid in sent)


def test_controller_killed_holding_statuses_it_had_not_stored_yet_loses_none(tmp_path: Path) -> None:
    """The controller acknowledges a status only once it is stored, so the broker redelivers what it died holding."""
    broker = PersistentMosquitto(tmp_path / "mosquitto", extra_config=("log_type all",)).start()
    device_ids = [f"sim-{n:02d}" for n in range(20)]
    controller = Controller(tmp_path, broker_url=broker.url)
    fleet = SimulatedFleet(broker.url, device_ids, tag="fleet", capabilities=["LOCK"], answer=False)
    try:
        wait_registered(controller, len(device_ids), "fleet")
        operation_id = controller.create({"operation_type": "LOCK", "operation_device_query": {"tags": "fleet"}})["id"]
        wait_for("every command delivered", lambda: all(fleet.commands_of(d) for d in device_ids))
        wait_for(
            "every dispatch recorded",
            lambda: all(r["dispatched_at"] for r in controller.device_results(operation_id).values()),
        )
        commands = {d: next(iter(fleet.commands_of(d))) for d in device_ids}
        # A stalled disk (or a backup holding the write lock) stops the controller's next database write.
        stall = sqlite3.connect(controller.db, isolation_level=None, timeout=10)
        stall.execute("BEGIN IMMEDIATE")
        try:
            since = len(broker.log())
            for device_id in device_ids:
                fleet.status(device_id, commands[device_id], "SUCCESSFUL", result={"sim": True})
            wait_for(
                "every status delivered to the controller",
                lambda: len(delivered_to_controller(broker.log(), since)) == len(device_ids),
                timeout=4,  # the controller's SQLite busy timeout is 5 s
            )
            time.sleep(0.3)
            controller.process.kill()
        finally:
            stall.execute("ROLLBACK")
            stall.close()
        acknowledged = acknowledged_by_controller(broker.log(), since)
        assert acknowledged == 0, "the controller acknowledged statuses it had not stored"

        restart_controller(controller)
        try:
            operation = controller.wait_finished(operation_id, timeout=10)
        except AssertionError:
            statuses = Counter(r["status"] for r in controller.device_results(operation_id).values())
            raise AssertionError(
                f"{acknowledged} status(es) were acknowledged before the kill; 10 s after the restart the devices "
                f"are {dict(statuses)}"
            ) from None
        assert counts(operation) == expected_counts(resolved=len(device_ids), success=len(device_ids))
    finally:
        fleet.close()
        controller.stop()
        broker.stop()


# --- 5. broker restarted mid-operation -------------------------------------------------------------------------------


def test_broker_restart_mid_operation_loses_neither_a_final_status_nor_a_queued_command(tmp_path: Path) -> None:
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    broker = PersistentMosquitto(tmp_path / "mosquitto").start()
    controller = Controller(tmp_path, broker_url=broker.url)
    alpha = Agent(tmp_path, broker.url, "alpha", "--tag", "fault")
    beta = Agent(tmp_path, broker.url, "beta", "--tag", "fault")
    try:
        controller.wait_online("alpha", "beta")
        beta.stop()  # beta gets its command only from the broker's disk, after the restart
        wait_for("beta offline", lambda: not controller.get("/v0/devices/beta/")["online"])
        operation_id = controller.create(script_operation({"tags": "fault"}, gated_script(runs, gate)))["id"]
        wait_for("alpha EXECUTING", lambda: device_status(controller, operation_id, "alpha") == "EXECUTING")
        wait_for("beta's command published", lambda: controller.device_results(operation_id)["beta"]["dispatched_at"])
        alpha_command = command_id_of(controller, operation_id, "alpha")

        broker.stop()
        wait_log("alpha noticing", alpha.process.output, "MQTT connection to")
        gate.touch()  # alpha's script ends while there is no broker
        wait_log("alpha finishing offline", alpha.process.output, f"command {alpha_command} SUCCESSFUL")
        broker.start()
        beta.process = beta.start()

        operation = controller.wait_finished(operation_id, timeout=30)
        assert operation["state"] == "COMPLETED", operation
        results = controller.device_results(operation_id)
        assert {d: r["status"] for d, r in results.items()} == {"alpha": "SUCCESSFUL", "beta": "SUCCESSFUL"}
        assert counts(operation) == expected_counts(resolved=2, success=2)
        time.sleep(0.5)
        assert (runs_on(runs, "alpha"), runs_on(runs, "beta")) == (1, 1)
        assert retained(broker.url, f"{PREFIX}/+/commands/+") == {}
    finally:
        gate.touch()
        alpha.stop()
        beta.stop()
        controller.stop()
        broker.stop()


# --- 6. network cut between agent and broker ------------------------------------------------------------------------


@pytest.fixture
def proxy(mosquitto_url: str) -> Iterator[TcpProxy]:
    with TcpProxy.to_url(mosquitto_url) as running:
        yield running


def test_final_status_reached_while_the_network_is_cut_is_delivered_once_it_is_restored(
    tmp_path: Path, mosquitto_url: str, proxy: TcpProxy
) -> None:
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, proxy.url, "alpha")
    try:
        controller.wait_online("alpha")
        operation_id = controller.create(script_operation({"device_id": "alpha"}, gated_script(runs, gate)))["id"]
        wait_for("alpha EXECUTING", lambda: device_status(controller, operation_id, "alpha") == "EXECUTING")
        command_id = command_id_of(controller, operation_id, "alpha")

        proxy.cut("blackhole")  # packets vanish: new connections hang
        wait_log("the agent noticing", agent.process.output, "MQTT connection to")
        wait_for("alpha offline (last will)", lambda: not controller.get("/v0/devices/alpha/")["online"])
        gate.touch()
        wait_log("the command finishing while cut", agent.process.output, f"command {command_id} SUCCESSFUL")
        time.sleep(0.5)
        assert device_status(controller, operation_id, "alpha") == "EXECUTING"

        proxy.restore()
        operation = controller.wait_finished(operation_id, timeout=30)
        result = controller.device_results(operation_id)["alpha"]
        assert result["status"] == "SUCCESSFUL", result
        assert result["result"]["exit_code"] == 0
        assert counts(operation) == expected_counts(resolved=1, success=1)
        assert line_count(runs) == 1
        assert retained(mosquitto_url, f"{PREFIX}/alpha/commands/+") == {}
    finally:
        gate.touch()
        agent.stop()
        controller.stop()


def test_final_status_reached_while_the_network_is_cut_survives_an_agent_restart(
    tmp_path: Path, mosquitto_url: str, proxy: TcpProxy
) -> None:
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, proxy.url, "alpha")
    try:
        controller.wait_online("alpha")
        operation_id = controller.create(script_operation({"device_id": "alpha"}, gated_script(runs, gate)))["id"]
        wait_for("alpha EXECUTING", lambda: device_status(controller, operation_id, "alpha") == "EXECUTING")
        command_id = command_id_of(controller, operation_id, "alpha")

        proxy.cut("refuse")
        wait_log("the agent noticing", agent.process.output, "MQTT connection to")
        gate.touch()
        wait_log("the command finishing while cut", agent.process.output, f"command {command_id} SUCCESSFUL")
        agent.stop()  # SIGTERM: from now on the final status exists only in the agent's journal on disk
        assert device_status(controller, operation_id, "alpha") == "EXECUTING"

        proxy.restore()
        agent.process = agent.start()
        operation = controller.wait_finished(operation_id, timeout=30)
        result = controller.device_results(operation_id)["alpha"]
        assert result["status"] == "SUCCESSFUL", result
        assert result["result"]["exit_code"] == 0
        assert counts(operation) == expected_counts(resolved=1, success=1)
        time.sleep(0.5)
        assert line_count(runs) == 1
        assert retained(mosquitto_url, f"{PREFIX}/alpha/commands/+") == {}
    finally:
        gate.touch()
        agent.stop()
        controller.stop()


# --- 7. hostile statuses --------------------------------------------------------------------------------------------


@pytest.fixture
def raw_pair(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, SimulatedFleet, str, dict[str, str]]]:
    """The controller, two devices `raw-a` and `raw-b` played by a raw paho client, and one LOCK sent to both."""
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    fleet = SimulatedFleet(mosquitto_url, ["raw-a", "raw-b"], tag="raw", capabilities=["LOCK"], answer=False)
    try:
        wait_registered(controller, 2, "raw")
        operation_id = controller.create({"operation_type": "LOCK", "operation_device_query": {"tags": "raw"}})["id"]
        wait_for("both commands received", lambda: fleet.commands_of("raw-a") and fleet.commands_of("raw-b"))
        commands = {d: next(iter(fleet.commands_of(d))) for d in ("raw-a", "raw-b")}
        yield controller, fleet, operation_id, commands
    finally:
        fleet.close()
        controller.stop()


def test_controller_ignores_reordered_duplicate_malformed_oversized_and_misaddressed_statuses(
    raw_pair: tuple[Controller, SimulatedFleet, str, dict[str, str]],
) -> None:
    controller, fleet, operation_id, commands = raw_pair
    a, b = commands["raw-a"], commands["raw-b"]
    log = controller.process.output
    sentinels = 0

    def settle() -> None:
        """Wait until the controller has taken in everything published so far (statuses are applied in order)."""
        nonlocal sentinels
        sentinels += 1
        fleet.status("raw-b", f"sentinel-{sentinels}", "PENDING")
        wait_log("the controller catching up", log, f"no command sentinel-{sentinels} was sent")

    # Reordered: the final status overtakes the earlier ones, which must not move it back.
    fleet.status("raw-a", a, "SUCCESSFUL", result={"run": 1})
    fleet.status("raw-a", a, "EXECUTING")
    fleet.status("raw-a", a, "PENDING")
    settle()
    done = controller.device_results(operation_id)["raw-a"]
    assert done["status"] == "SUCCESSFUL"
    assert done["result"] == {"run": 1}
    assert "already SUCCESSFUL; the first final status stands" in log()

    # Duplicate: the very same message again changes nothing.
    executing = fleet.status("raw-b", b, "EXECUTING", progress=10)
    settle()
    started = controller.device_results(operation_id)["raw-b"]
    assert started["status"] == "EXECUTING"
    time.sleep(0.01)  # a re-applied duplicate would show in the timestamps
    fleet.publish(f"{PREFIX}/raw-b/status/{b}", executing)
    # B reports on its own topic for A's command, and names B in the payload: neither A nor B may change.
    fleet.status("raw-b", a, "FAILED", failure_reason="forged by raw-b")
    # Malformed, in several ways, on B's own status topic for B's own command.
    b_topic = f"{PREFIX}/raw-b/status/{b}"
    fleet.publish(b_topic, b"{not json")
    fleet.publish(b_topic, _json(command_id=b, device_id="raw-b", status="DONE", timestamp=_now()))
    fleet.publish(b_topic, _json(command_id=b, device_id="raw-b", status="FAILED", timestamp=_now()))
    fleet.publish(
        b_topic, _json(command_id=a, device_id="raw-b", status="FAILED", failure_reason="x", timestamp=_now())
    )
    fleet.publish(f"{PREFIX}/raw b/status/{b}", _json(command_id=b, device_id="raw b", status="PENDING"))
    # Oversized (> 256 KiB) but otherwise a perfect SUCCESSFUL.
    big = {"command_id": b, "device_id": "raw-b", "status": "SUCCESSFUL", "timestamp": _now()}
    fleet.publish(b_topic, json.dumps({**big, "result": {"stdout": "x" * 300_000}}).encode())
    settle()

    results = controller.device_results(operation_id)
    assert stable_fields(results["raw-a"]) == stable_fields(done)
    assert stable_fields(results["raw-b"]) == stable_fields(started)
    assert controller.process.popen.poll() is None
    text = log()
    assert f"command {a} was not sent to device 'raw-b'" in text
    assert text.count(f"skipped a message on {b_topic}") == 5, text
    assert "exceeds the 262144-byte limit" in text
    assert "differs from the topic's" in text
    assert f"skipped a message on {PREFIX}/raw b/status/{b}" in text

    # B finishes for real; late and regressing statuses afterwards leave everything as it was.
    fleet.status("raw-b", b, "SUCCESSFUL", result={"run": 1})
    operation = controller.wait_finished(operation_id)
    assert operation["state"] == "COMPLETED"
    assert counts(operation) == expected_counts(resolved=2, success=2)
    finished = controller.device_results(operation_id)
    fleet.status("raw-b", b, "EXECUTING", progress=50)
    fleet.status("raw-b", b, "FAILED", failure_reason="too late")
    fleet.status("raw-a", a, "FAILED", failure_reason="too late")
    settle()
    assert {d: stable_fields(r) for d, r in controller.device_results(operation_id).items()} == {
        d: stable_fields(r) for d, r in finished.items()
    }
    assert controller.get(f"/v0/operations/{operation_id}/") == operation
    assert log().count("already SUCCESSFUL; the first final status stands") == 5


def test_a_device_that_timed_out_keeps_the_timeout_reason_when_its_late_failure_arrives(
    tmp_path: Path, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    fleet = SimulatedFleet(mosquitto_url, ["raw-a"], tag="raw", capabilities=["LOCK"], answer=False)
    try:
        wait_registered(controller, 1, "raw")
        body = {"operation_type": "LOCK", "operation_device_query": {"tags": "raw"}, "timeout_s": 1}
        operation_id = controller.create(body)["id"]
        wait_for("the command received", lambda: fleet.commands_of("raw-a"))
        command_id = next(iter(fleet.commands_of("raw-a")))
        fleet.status("raw-a", command_id, "EXECUTING")
        operation = controller.wait_finished(operation_id, timeout=10)
        timed_out = controller.device_results(operation_id)["raw-a"]
        assert timed_out["failure_reason"] == "timed out: no final status within 1 s of starting"

        fleet.status(
            "raw-a", command_id, "FAILED", failure_reason="script exited 3: disk full", result={"exit_code": 3}
        )
        fleet.status("raw-a", "sentinel", "PENDING")
        wait_log("the controller catching up", controller.process.output, "no command sentinel was sent")
        assert stable_fields(controller.device_results(operation_id)["raw-a"]) == stable_fields(timed_out)
        assert controller.get(f"/v0/operations/{operation_id}/") == operation
    finally:
        fleet.close()
        controller.stop()


def test_a_repeated_final_status_with_other_content_does_not_rewrite_the_stored_result(
    raw_pair: tuple[Controller, SimulatedFleet, str, dict[str, str]],
) -> None:
    controller, fleet, operation_id, commands = raw_pair
    for device_id, command_id in commands.items():
        fleet.status(device_id, command_id, "SUCCESSFUL", result={"exit_code": 0, "stdout": "first"})
    operation = controller.wait_finished(operation_id)
    stored = controller.device_results(operation_id)["raw-a"]
    fleet.status("raw-a", commands["raw-a"], "SUCCESSFUL", result={"exit_code": 0, "stdout": "second"})
    fleet.status("raw-a", "sentinel", "PENDING")
    wait_log("the controller catching up", controller.process.output, "no command sentinel was sent")
    assert stable_fields(controller.device_results(operation_id)["raw-a"]) == stable_fields(stored)
    assert controller.get(f"/v0/operations/{operation_id}/") == operation
