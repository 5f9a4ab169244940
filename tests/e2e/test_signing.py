"""Signed commands on real processes: a real `tetherd` that trusts the controller's key, on a private Mosquitto.

Genuine operations run; forged, altered, expired, replayed and cross-posted commands published straight to the
broker end FAILED with the reason (or are dropped) and run nothing: each would create a marker file if it ran.
"""

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from nacl.signing import SigningKey

from controller.signing_keys import SigningKeys
from shared.signing import Signer
from tests.e2e.harness import Agent, Controller, assert_lock_runs, restart_controller, run_cli, tether, wait_for
from tests.e2e.test_cli import assert_one_line_error
from tests.fixtures_brokers import free_port


class Broker:
    """A paho client that publishes like an attacker on the broker, and reads every status."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"intruder-{time.monotonic_ns()}")
        self._client.on_message = self._on_message
        self._client.connect(host, int(port))
        self._client.subscribe("tether/v1/devices/+/status/+", qos=1)
        self._client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self._lock:
            self.statuses.setdefault(body["command_id"], []).append(body)

    def publish_command(self, device_id: str, command_id: str, payload: bytes) -> None:
        topic = f"tether/v1/devices/{device_id}/commands/{command_id}"
        self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def final(self, command_id: str, timeout: float = 15) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            with self._lock:
                ends = [s for s in self.statuses.get(command_id, []) if s["status"] in ("SUCCESSFUL", "FAILED")]
            return ends[-1] if ends else None

        return wait_for(f"a final status of {command_id}", finished, timeout=timeout)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def signed_device(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, Agent, Broker]]:
    """A controller, and the agent `vault` trusting the controller's public key, online on a private Mosquitto."""
    public = tether("keys", "public", "--db", str(tmp_path / "tether.db")).strip()
    config = tmp_path / "agent.toml"
    config.write_text(f"trusted_keys = [{json.dumps(public)}]\n")
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "vault", "--config", str(config))
    broker = Broker(mosquitto_url)
    try:
        controller.wait_online("vault")
        yield controller, agent, broker
    finally:
        broker.close()
        agent.stop()
        controller.stop()


def script_command(command_id: str, marker: Path, device_id: str = "vault", **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "command_id": command_id,
        "operation_id": "intruder",
        "device_id": device_id,
        "operation_type": "RUN_SHELL_SCRIPT",
        "arguments": {"script": f"touch {marker}"},
        "issued_at": now.isoformat().replace("+00:00", "Z"),
        "start_before": (now + timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
    }
    return {**body, **changes}


def controller_signer(controller: Controller) -> Signer:
    """What the controller signs with: a genuine signature, from its own key file."""
    return SigningKeys.in_state_dir(controller.db.parent).signer()


def test_a_genuine_operation_runs_on_a_device_that_checks_signatures(
    signed_device: tuple[Controller, Agent, Broker], tmp_path: Path
) -> None:
    controller, _, _ = signed_device
    marker = tmp_path / "genuine"
    created = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "vault"},
            "arguments": {"script": f"touch {marker}"},
        }
    )
    assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
    assert marker.exists()
    assert controller.device_results(created["id"])["vault"]["status"] == "SUCCESSFUL"


def test_forged_altered_and_expired_commands_fail_with_the_reason_and_run_nothing(
    signed_device: tuple[Controller, Agent, Broker], tmp_path: Path
) -> None:
    controller, agent, broker = signed_device
    genuine = controller_signer(controller)
    stranger = Signer(SigningKey.generate())
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")

    def altered(command_id: str, marker: Path) -> bytes:
        body = json.loads(genuine.signed(script_command(command_id, marker)))
        body["arguments"] = {"script": f"touch {marker}; echo owned"}
        return json.dumps(body).encode()

    cases: dict[str, tuple[bytes, str]] = {}
    for name, make, reason in [
        ("unsigned", lambda c, m: json.dumps(script_command(c, m)).encode(), "signature invalid: the message is not"),
        ("stranger", lambda c, m: stranger.signed(script_command(c, m)), "signature invalid: signed by key"),
        ("altered", altered, "signature invalid: it does not match the message"),
        ("expired", lambda c, m: genuine.signed(script_command(c, m, start_before=past)), "expired: it had to start"),
    ]:
        command_id = f"forged-{name}"
        cases[command_id] = (make(command_id, tmp_path / name), reason)
    for command_id, (payload, _) in cases.items():
        broker.publish_command("vault", command_id, payload)

    for command_id, (_, reason) in cases.items():
        final = broker.final(command_id)
        assert final["status"] == "FAILED", command_id
        assert final["failure_reason"].startswith(reason), (command_id, final["failure_reason"])
    assert [name for name in ("unsigned", "stranger", "altered", "expired") if (tmp_path / name).exists()] == []
    assert "refused" in agent.process.output()


def test_replayed_and_cross_posted_commands_run_nothing(
    signed_device: tuple[Controller, Agent, Broker], tmp_path: Path
) -> None:
    controller, agent, broker = signed_device
    genuine = controller_signer(controller)
    once = tmp_path / "once.log"
    first = genuine.signed(script_command("replayed", once, arguments={"script": f"echo run >> {once}"}))
    broker.publish_command("vault", "replayed", first)
    assert broker.final("replayed")["status"] == "SUCCESSFUL"

    broker.publish_command("vault", "replayed", b"")  # cleared, as the controller would, then replayed
    broker.publish_command("vault", "replayed", first)
    for_another = tmp_path / "cross-posted"
    broker.publish_command("vault", "cross", genuine.signed(script_command("cross", for_another, device_id="other")))

    wait_for("the replay to be seen", lambda: "already finished" in agent.process.output(), timeout=15)
    wait_for("the cross-post to be dropped", lambda: "which the topic does not" in agent.process.output(), timeout=15)
    assert once.read_text() == "run\n"
    assert not for_another.exists()
    assert "cross" not in broker.statuses


def test_a_key_rollover_never_leaves_a_device_refusing_genuine_commands(tmp_path: Path, mosquitto_url: str) -> None:
    db = str(tmp_path / "tether.db")
    old = tether("keys", "public", "--db", db).strip()
    new = tether("keys", "rotate", "--db", db).strip()
    listing = tether("keys", "public", "--all", "--db", db).splitlines()
    assert tether("keys", "public", "--db", db).strip() == old  # made, not active yet
    new_id = next(line.split()[0] for line in listing if new in line)
    old_id = next(line.split()[0] for line in listing if old in line)
    assert [line.endswith("(active)") for line in listing if new in line] == [False]

    # The agents learn the new key first, beside the old one; one agent still has only the old key.
    both, only_old = tmp_path / "both.toml", tmp_path / "old.toml"
    both.write_text(f"trusted_keys = [{json.dumps(old)}, {json.dumps(new)}]\n")
    only_old.write_text(f"trusted_keys = [{json.dumps(old)}]\n")
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    ready = Agent(tmp_path, mosquitto_url, "ready", "--config", str(both))
    late = Agent(tmp_path, mosquitto_url, "late", "--config", str(only_old))
    try:
        controller.wait_online("ready", "late")
        assert_lock_runs(controller, ready)  # still signed with the old key: both kinds of agent run it
        assert_lock_runs(controller, late)

        activated = run_cli("tether", "keys", "activate", new_id, "--db", db)
        assert (activated.returncode, activated.stderr) == (0, "")  # rotate recorded it: nothing to say
        controller.process.stop()  # it takes the new key at its next start
        restart_controller(controller)
        assert_lock_runs(controller, ready)  # signed with the new key
        assert {key_id for key_id, _ in fleet_keys(Path(db))} == {old_id, new_id}
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "late"}})
        controller.wait_finished(created["id"])
        result = controller.device_results(created["id"])["late"]
        assert result["status"] == "FAILED"
        assert result["failure_reason"].startswith("signature invalid: signed by key")
        assert len(late.locks()) == 1  # the forgotten agent ran nothing new
    finally:
        ready.stop()
        late.stop()
        controller.stop()


def test_activating_an_unknown_key_is_one_line(tmp_path: Path) -> None:
    done = run_cli("tether", "keys", "activate", "0123456789abcdef", "--db", str(tmp_path / "tether.db"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"tether: error: no signing key 0123456789abcdef in {tmp_path / 'signing'}"


def fleet_keys(db: Path) -> list[tuple[str, str]]:
    """The signing keys the database records as the fleet's: (key id, public key)."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT key_id, public_key FROM signing_keys ORDER BY key_id").fetchall()


def dump(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def serve_until_it_exits(db: Path) -> subprocess.CompletedProcess[str]:
    listen = ("--http-listen", f"127.0.0.1:{free_port()}", "--mqtt-listen", f"127.0.0.1:{free_port()}")
    return run_cli("tether", "serve", "--db", str(db), *listen, "--embedded-broker", "amqtt")


def test_the_first_start_records_the_controller_s_key_as_the_fleet_s_and_so_does_an_upgraded_database(
    tmp_path: Path,
) -> None:
    controller = Controller(tmp_path)
    try:
        (active,) = [key for key in SigningKeys.in_state_dir(tmp_path).listing() if key.active]
        assert fleet_keys(controller.db) == [(active.key_id, active.public_key)]
        controller.process.stop()
        restart_controller(controller)  # the same keys: it starts as before
        controller.process.stop()
        with closing(sqlite3.connect(controller.db)) as conn, conn:  # as a Tether from before migration 3 left it
            conn.execute("DROP TABLE signing_keys")
            conn.execute("DELETE FROM schema_migrations WHERE number >= 3")
        restart_controller(controller)
        assert fleet_keys(controller.db) == [(active.key_id, active.public_key)]
        assert "recorded signing keys" in controller.process.output()
    finally:
        controller.stop()


def test_a_controller_whose_state_directory_lost_its_signing_keys_is_refused_in_one_line_and_changes_nothing(
    tmp_path: Path,
) -> None:
    controller = Controller(tmp_path)
    try:
        controller.process.stop()
        signing = tmp_path / "signing"
        (fleet,) = [key.key_id for key in SigningKeys(signing).listing()]
        shutil.move(signing, tmp_path / "saved-signing")
        before = dump(controller.db)
        refused = serve_until_it_exits(controller.db)
        assert refused.returncode == 1
        assert_one_line_error(
            refused,
            f"tether: error: {signing} holds no active signing key, and the fleet's are {fleet}: copy {signing} from "
            "a running controller, or introduce a new key with `tether keys rotate` (docs/scale-out.md)",
        )
        assert dump(controller.db) == before
        assert not signing.exists()  # no key of its own made either
        shutil.move(tmp_path / "saved-signing", signing)  # copied back: it starts
        restart_controller(controller)
    finally:
        controller.stop()
