"""`tether serve`, `tether keys` and `tether db` on PostgreSQL, as an operator runs them: a private server from
tests/fixtures_postgres.py, a private Mosquitto, real agents with fake tools."""

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from controller.store.migrations import LATEST, MIGRATIONS
from tests.e2e.harness import BIN, Agent, Controller, assert_lock_runs, run_cli, wait_for
from tests.e2e.test_cli import assert_one_line_error
from tests.fixtures_brokers import free_port
from tests.fixtures_postgres import PASSWORD, PostgresDatabase, PostgresServer


def test_status_and_upgrade_on_postgresql_apply_each_migration_once(postgres_database: PostgresDatabase) -> None:
    url = postgres_database.url
    status = run_cli("tether", "db", "status", "--db", url)
    pending = "".join(f"pending {m.number}: {m.title}\n" for m in MIGRATIONS)
    assert (status.returncode, status.stdout) == (0, f"{url}: schema 0 of {LATEST}\n{pending}")

    applied = "".join(f"applied {m.number}: {m.title}\n" for m in MIGRATIONS)
    upgraded = run_cli("tether", "db", "upgrade", "--db", url)
    assert (upgraded.returncode, upgraded.stdout) == (0, f"{applied}{url}: schema {LATEST}, up to date\n")
    again = run_cli("tether", "db", "upgrade", "--db", url)
    assert (again.returncode, again.stdout) == (0, f"{url}: schema {LATEST}, up to date\n")
    status = run_cli("tether", "db", "status", "--db", url)
    assert (status.returncode, status.stdout) == (0, f"{url}: schema {LATEST} of {LATEST}\n")


@pytest.mark.parametrize(
    "command", [["db", "status"], ["db", "upgrade"], ["keys", "create", "--name", "ops", "--role", "admin"]]
)
def test_a_wrong_password_is_one_line_that_does_not_show_the_password(
    postgres_database: PostgresDatabase, command: list[str]
) -> None:
    wrong = postgres_database.password_url.replace(PASSWORD, "not-the-password")
    done = run_cli("tether", *command, "--db", wrong)
    assert done.returncode == 1
    assert_one_line_error(done, "PostgreSQL at postgresql://tether_password:***@127.0.0.1", "password authentication")
    assert "not-the-password" not in done.stderr + done.stdout
    assert "the database password in --db is visible to every local user in ps" in done.stderr


def test_the_password_may_come_from_pgpassword_and_then_nothing_warns(postgres_database: PostgresDatabase) -> None:
    without = postgres_database.password_url.replace(f":{PASSWORD}@", "@")
    done = subprocess.run(
        [str(BIN / "tether"), "keys", "create", "--name", "ops", "--role", "read", "--db", without],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGPASSWORD": PASSWORD},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tth_")
    assert done.stderr == ""


def test_an_unreachable_server_is_one_line_at_once(tmp_path: Path) -> None:
    url = f"postgresql://tether@127.0.0.1:{free_port()}/tether"
    started = time.monotonic()
    done = serve_as_replica(url, "mqtt://127.0.0.1:1")
    assert done.returncode == 1
    assert_one_line_error(done, f"PostgreSQL at {url} is unavailable", "refused")
    assert time.monotonic() - started < 10


def test_an_operation_runs_on_postgresql(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, mosquitto_url, database=postgres_database.url)
    agent = Agent(tmp_path, mosquitto_url, "pg-device")
    try:
        controller.wait_online("pg-device")
        assert_lock_runs(controller, agent)
    finally:
        agent.stop()
        controller.stop()


def test_a_postgresql_restart_mid_operation_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, mosquitto_url, database=postgres_database.url)
    agents = [Agent(tmp_path, mosquitto_url, f"pg-{n}") for n in range(3)]
    try:
        controller.wait_online(*(agent.device_id for agent in agents))
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"platform": "linux"}})
        postgres_server.stop("immediate")
        time.sleep(3)  # the devices run and report meanwhile; nothing can be stored
        down = controller.http.get(f"/v0/operations/{created['id']}/")
        assert down.status_code == 503, down.text
        postgres_server.start()

        finished = controller.wait_finished(created["id"], timeout=60)
        assert finished["state"] == "COMPLETED"
        stats = finished["operation_stats"]["device_operation_statuses_count"]
        assert (stats["success_device_count"], stats["failed_device_count"]) == (3, 0)
        assert all(len(agent.locks()) == 1 for agent in agents)
        assert "Traceback" not in controller.process.output()
        assert controller.process.popen.poll() is None
    finally:
        for agent in agents:
            agent.stop()
        controller.stop()


def test_the_api_answers_503_while_the_server_is_down_and_recovers(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, mosquitto_url, database=postgres_database.url)
    try:
        postgres_server.stop("fast")
        for path in ("/v0/operations/", "/v0/devices/"):
            response = controller.http.get(path)
            assert response.status_code == 503, response.text
            assert "PostgreSQL at" in response.json()["message"]
        postgres_server.start()

        def answers() -> bool:
            try:
                return controller.http.get("/v0/operations/").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the API to answer again", answers, timeout=30)
        assert controller.process.popen.poll() is None
    finally:
        controller.stop()


def serve_with_embedded_broker(url: str) -> subprocess.CompletedProcess[str]:
    """`tether serve` on the database with an embedded broker of its own, until it exits."""
    listen = ("--http-listen", f"127.0.0.1:{free_port()}", "--mqtt-listen", f"127.0.0.1:{free_port()}")
    return run_cli("tether", "serve", "--db", url, *listen, "--embedded-broker", "amqtt")


def serve_as_replica(url: str, broker_url: str) -> subprocess.CompletedProcess[str]:
    """`tether serve` on the database with an external broker (a replica), until it exits."""
    return run_cli("tether", "serve", "--db", url, "--http-listen", f"127.0.0.1:{free_port()}", "--broker", broker_url)


def test_a_controller_with_its_own_broker_and_replicas_refuse_each_other_in_one_line(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    url = postgres_database.url
    (tmp_path / "embedded").mkdir()
    embedded = Controller(tmp_path / "embedded", None, database=url)
    try:
        replica = serve_as_replica(url, mosquitto_url)
        assert replica.returncode == 1
        assert_one_line_error(replica, "another tether serve (server pid", f"is serving {url} with its embedded broker")
        second = serve_with_embedded_broker(url)
        assert second.returncode == 1
        assert_one_line_error(second, f"is serving {url} with its embedded broker")
    finally:
        embedded.stop()


def test_a_controller_with_its_own_broker_is_refused_beside_replicas(
    tmp_path: Path, postgres_database: PostgresDatabase, mosquitto_url: str
) -> None:
    url = postgres_database.url
    (tmp_path / "replica").mkdir()
    replica = Controller(tmp_path / "replica", mosquitto_url, database=url)
    try:
        embedded = serve_with_embedded_broker(url)
        assert embedded.returncode == 1
        assert_one_line_error(embedded, f"is serving {url} as a replica", "give this one --broker")
    finally:
        replica.stop()
