"""Several `tether serve` replicas on one PostgreSQL and one Mosquitto: each serves the whole API, one leads (ingest,
dispatch, supervision), and the lead moves when its holder dies, losing nothing and running nothing twice."""

import json
import os
import shlex
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from controller.signing_keys import SigningKeys
from tests.e2e.attacks.test_shipped_defaults import unit_directives
from tests.e2e.harness import (
    BIN,
    Agent,
    Controller,
    HealthProbe,
    Process,
    Simulator,
    assert_lock_runs,
    tether,
    wait_for,
)
from tests.e2e.test_cli import assert_one_line_error
from tests.e2e.test_events import sse
from tests.fixtures_brokers import free_port
from tests.fixtures_postgres import PASSWORD, PASSWORD_ROLE, PostgresDatabase

TAKEOVER_S = 20.0
"""How long a standby may take to lead once the leader died: the grace, the check interval, reconnecting."""


class Replicas:
    """N controllers on one database and broker, sharing their state directory (signing keys) and one API key."""

    def __init__(self, work: Path, database: str, broker_url: str, count: int) -> None:
        self.state_dir = work / "state"
        self.members: list[Controller] = []
        for n in range(count):
            (work / f"replica-{n}").mkdir(parents=True)
            key = self.members[0].key if self.members else None
            self.members.append(
                Controller(work / f"replica-{n}", broker_url, database=database, state_dir=self.state_dir, key=key)
            )

    def leader(self) -> Controller:
        """The replica that says, in its log, it leads now (the last to say so, of those alive)."""
        alive = [c for c in self.members if c.process.popen.poll() is None]

        def leading() -> Controller | None:
            for controller in alive:
                log = controller.process.output()
                if log.rfind("leading:") > log.rfind("lost the lead"):
                    return controller
            return None

        return wait_for("a replica to lead", leading, timeout=TAKEOVER_S)

    def stop(self) -> None:
        for controller in self.members:
            controller.stop()


def trusting_agents(work: Path, replicas: Replicas, broker_url: str, names: list[str]) -> list[Agent]:
    """Agents that run only commands signed with the replicas' shared key."""
    signing = SigningKeys.in_state_dir(replicas.state_dir)
    public = next(key.public_key for key in signing.listing() if key.active)
    config = work / "agent.toml"
    config.write_text(f"trusted_keys = [{json.dumps(public)}]\n")
    return [Agent(work, broker_url, name, "--config", str(config)) for name in names]


def stored_counts(url: str, operation_id: str) -> dict[str, int]:
    """The operation's commands by status, counted in its rows."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM device_operations WHERE operation_id = %s GROUP BY status", (operation_id,)
        ).fetchall()
    return {status: count for status, count in rows}


def test_any_replica_serves_the_api_one_leads_and_the_lead_moves_when_it_dies(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    with ExitStack() as stack:
        replicas = Replicas(tmp_path, postgres_database.url, mosquitto_url, 2)
        stack.callback(replicas.stop)
        agents = trusting_agents(tmp_path, replicas, mosquitto_url, ["r-1", "r-2", "r-3"])
        for agent in agents:
            stack.callback(agent.stop)
        leader = replicas.leader()
        standby = next(c for c in replicas.members if c is not leader)
        standby.wait_online("r-1", "r-2", "r-3")

        # Created on the standby: the leader dispatches it; the standby's own stream shows each change the leader
        # stores, to the end (the script runs long enough for the stream to open before it ends).
        created = standby.create(
            {
                "operation_type": "RUN_SHELL_SCRIPT",
                "operation_device_query": {"platform": "linux"},
                "arguments": {"script": f"sleep 2; echo ran >> {tmp_path / 'ran.log'}"},
            }
        )
        events = [event for _, event in sse(standby, created["id"])]
        assert events[0].state != "COMPLETED", [e.state for e in events]
        assert events[-1].state == "COMPLETED", [e.state for e in events]
        assert (
            leader.wait_finished(created["id"])["operation_stats"]["device_operation_statuses_count"][
                "success_device_count"
            ]
            == 3
        )
        assert (tmp_path / "ran.log").read_text() == "ran\n" * 3  # once on each device

        leader.process.kill()  # SIGKILL, and reaped
        assert replicas.leader() is standby
        again = standby.create({"operation_type": "LOCK", "operation_device_query": {"platform": "linux"}})
        finished = standby.wait_finished(again["id"], timeout=TAKEOVER_S)
        assert finished["state"] == "COMPLETED"
        assert finished["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 3
        assert [len(agent.locks()) for agent in agents] == [1, 1, 1]
        assert stored_counts(postgres_database.url, again["id"]) == {"SUCCESSFUL": 3}


FLEET = 5_000


def test_three_replicas_lose_a_leader_mid_dispatch_and_another_mid_ingest_and_each_device_runs_once(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    url = postgres_database.url
    with ExitStack() as stack:
        replicas = Replicas(tmp_path, url, mosquitto_url, 3)
        stack.callback(replicas.stop)
        agents = trusting_agents(tmp_path, replicas, mosquitto_url, ["real-1", "real-2", "real-3"])
        for agent in agents:
            stack.callback(agent.stop)
        fleet = Simulator(tmp_path, mosquitto_url, FLEET, "--latency-ms", "2000")
        first = replicas.leader()
        wait_for("the fleet registered", lambda: first.get("/v0/devices/", limit=1)["count"] >= FLEET + 3, timeout=60)
        # Reads on every replica all along; those of the one left standing must never have failed.
        probes = {id(c): HealthProbe(c, interval_s=0.05, path="/v0/operations/") for c in replicas.members}
        for probe in probes.values():
            probe.start()
            stack.callback(probe.stop)
        asked = next(c for c in replicas.members if c is not first)

        created = asked.create({"operation_type": "LOCK", "operation_device_query": {"all": True}})
        operation_id = created["id"]

        def stats() -> dict[str, Any]:
            operation: dict[str, Any] = asked.get(f"/v0/operations/{operation_id}/")
            return operation["operation_stats"]["device_operation_statuses_count"]

        wait_for("dispatch under way", lambda: 0 < stats()["dispatched_device_count"] < FLEET + 3, interval=0.01)
        first.process.kill()
        second = replicas.leader()
        assert second is not first
        asked = next(c for c in replicas.members if c not in (first, second))
        wait_for("statuses arriving", lambda: 0 < stats()["success_device_count"] < FLEET, timeout=60, interval=0.01)
        second.process.kill()
        survivor = replicas.leader()
        assert survivor is asked

        finished = survivor.wait_finished(operation_id, timeout=180)
        probe = probes[id(survivor)]
        probe.stop()
        assert finished["state"] == "COMPLETED"
        counted = finished["operation_stats"]["device_operation_statuses_count"]
        assert counted["success_device_count"] == FLEET + 3
        assert stored_counts(url, operation_id) == {"SUCCESSFUL": FLEET + 3}
        assert [len(agent.locks()) for agent in agents] == [1, 1, 1]
        ran = fleet.stop()["runs_per_device"]
        assert len(ran) == FLEET
        assert set(ran.values()) == {1}
        assert all(latency != float("inf") for _, latency in probe.checks), "a read on the survivor failed"


def test_the_shipped_replica_unit_runs_replicas_that_share_the_work(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    """Two instances of systemd/tether-replica@.service's ExecStart, with its environment file's settings and its
    credentials where systemd puts them (%d): no password in argv, one leads, both serve."""
    directives = unit_directives("tether-replica@.service")
    loaded = tmp_path / "credentials"
    loaded.mkdir()
    server = postgres_database.server
    (loaded / "pgpass").write_text(f"127.0.0.1:{server.port}:{postgres_database.name}:{PASSWORD_ROLE}:{PASSWORD}\n")
    (loaded / "pgpass").chmod(0o600)
    (loaded / "broker.password").write_text("unused by an anonymous broker\n")
    url = postgres_database.password_url.replace(f":{PASSWORD}@", "@")
    login = mosquitto_url.replace("mqtt://", "mqtt://tether-controller@")  # the unit's password file needs a user
    env = {**os.environ, "TETHER_DB": url, "TETHER_BROKER": login, "TETHER_STATE_DIR": str(tmp_path / "state")}
    for assignment in directives["Environment"]:
        name, _, value = assignment.partition("=")
        if name == "PGPASSFILE":
            env[name] = value.replace("%d", str(loaded))
    assert {credential.partition(":")[0] for credential in directives["LoadCredential"]} == {
        "pgpass",
        "broker.password",
    }
    [exec_start] = directives["ExecStart"]
    key = ""
    replicas = []
    try:
        for n in range(2):
            port = free_port()
            command = (
                exec_start.replace("/opt/tether/bin/", f"{BIN}/")
                .replace("${TETHER_BROKER}", login)
                .replace("%d", str(loaded))
                .replace("%i", str(port))
            )
            assert PASSWORD not in command
            if not key:
                key = tether(
                    "keys", "create", "--name", "ops", "--role", "admin", "--db", postgres_database.password_url
                )
            replicas.append(
                Controller.adopt(Process(shlex.split(command), tmp_path / f"unit-{n}.log", env), port, key.strip())
            )
        agent = Agent(tmp_path, mosquitto_url, "unit-device")
        try:
            for replica in replicas:
                replica.wait_online("unit-device")
                assert_lock_runs(replica, agent)
        finally:
            agent.stop()
        logs = [replica.process.output() for replica in replicas]
        assert sum("leading:" in log for log in logs) == 1, logs
    finally:
        for replica in replicas:
            replica.stop()


def test_a_replica_whose_state_directory_is_not_the_fleet_s_is_refused_in_one_line_while_the_first_serves(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    """A replica started on another machine without a copy of the signing keys would sign every command with a key
    of its own that no agent trusts (docs/scale-out.md, "Signing keys"); once it has a key of its own that rotate
    recorded and it activated, it starts."""
    url = postgres_database.url
    (tmp_path / "first").mkdir()
    first = Controller(tmp_path / "first", mosquitto_url, database=url, state_dir=tmp_path / "first-state")
    try:
        (fleet,) = [key.key_id for key in SigningKeys.in_state_dir(tmp_path / "first-state").listing()]
        fresh = tmp_path / "elsewhere" / "signing"
        argv = [str(BIN / "tether"), "serve", "--db", url, "--http-listen", f"127.0.0.1:{free_port()}"]
        env = {**os.environ, "TETHER_STATE_DIR": str(fresh.parent)}
        refused = subprocess.run(
            [*argv, "--broker", mosquitto_url], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert refused.returncode == 1
        assert_one_line_error(
            refused,
            f"tether: error: {fresh} holds no active signing key, and the fleet's are {fleet}: copy {fresh} from a "
            "running controller, or introduce a new key with `tether keys rotate` (docs/scale-out.md)",
        )
        assert not fresh.exists()
        assert fleet_keys(url) == [fleet]
        agent = Agent(tmp_path, mosquitto_url, "still-served")
        try:
            first.wait_online("still-served")
            assert_lock_runs(first, agent)  # the first replica leads and serves on
        finally:
            agent.stop()

        # The other remedy: a new key made there, given to the agents (these trust any), activated.
        def tether_there(*args: str) -> str:
            done = subprocess.run(
                [str(BIN / "tether"), *args, "--db", url], env=env, capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, done.stderr
            return done.stderr

        introduced = tether_there("keys", "rotate").split()[3].rstrip(";")  # "created signing key <id>; ..."
        assert fleet_keys(url) == [fleet, introduced]
        assert tether_there("keys", "activate", introduced) == ""  # recorded by rotate already
        (tmp_path / "second").mkdir()
        second = Controller(tmp_path / "second", mosquitto_url, database=url, state_dir=fresh.parent, key=first.key)
        second.stop()
    finally:
        first.stop()


def fleet_keys(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [key_id for (key_id,) in conn.execute("SELECT key_id FROM signing_keys ORDER BY recorded_at, key_id")]
