"""The stranger on the network, and the local user reading `ps` and files: what Tether does as shipped.

The controller's unit serves no anonymous broker, `tether serve` refuses one beyond loopback unless told, passwords
come from files or the environment rather than argv, and files made outside systemd are private to their owner.
"""

import contextlib
import os
import re
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import (
    BIN,
    Agent,
    Controller,
    PersistentMosquitto,
    Process,
    assert_lock_runs,
    run_cli,
    tether,
    wait_for,
)
from tests.e2e.test_broker_acl import Client
from tests.fixtures_brokers import free_port

UNITS = Path(__file__).resolve().parents[3] / "systemd"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Children started inside inherit `mask`, as from a login shell (022), not systemd's UMask=0077."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def command_line(pid: int) -> str:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()


def serve(work: Path, *args: str, env: dict[str, str] | None = None) -> Process:
    """`tether serve` as given, its own database under `work`, not waited on."""
    argv = [str(BIN / "tether"), "serve", "--db", str(work / "tether.db"), *args]
    return Process(argv, work / "serve.log", env=env)


def api_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 500
    except httpx.TransportError:
        return False


def unit_directives(name: str) -> dict[str, list[str]]:
    """Each directive of a shipped unit with its values, in order (the unit has no line continuations)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


# --- The controller's unit ---------------------------------------------------------------------------------------


def test_the_shipped_controller_unit_admits_no_anonymous_client(tmp_path: Path) -> None:
    """The unit's own ExecStart, with its credentials where systemd would put them (%d), refuses a stranger and
    serves the devices `tether broker acl` made logins for."""
    directives = unit_directives("tether.service")
    printed = tether("broker", "acl", "--dir", str(tmp_path / "made"), "--device", "dev-a")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    loaded = tmp_path / "credentials"  # what LoadCredential= copies into $CREDENTIALS_DIRECTORY
    loaded.mkdir()
    for credential in directives.get("LoadCredential", []):
        name, _, source = credential.partition(":")
        (loaded / name).write_bytes((tmp_path / "made" / Path(source).name).read_bytes())
    http_port, mqtt_port = free_port(), free_port()
    [exec_start] = directives["ExecStart"]
    # The test listens on loopback only: what it checks is who the broker admits, not which interface it binds.
    command = (
        exec_start.replace("/opt/tether/bin/", f"{BIN}/")
        .replace("/var/lib/tether/", f"{tmp_path}/state/")
        .replace("%d", str(loaded))
        .replace("0.0.0.0:8080", f"127.0.0.1:{http_port}")
        .replace("0.0.0.0:1883", f"127.0.0.1:{mqtt_port}")
    )
    key = tether("keys", "create", "--name", "ops", "--role", "admin", "--db", str(tmp_path / "state" / "tether.db"))
    controller = Controller.adopt(Process(shlex.split(command), tmp_path / "unit.log"), http_port, key.strip())
    agent = Agent(tmp_path, f"mqtt://dev-a:{credentials['dev-a']}@127.0.0.1:{mqtt_port}", "dev-a")
    try:
        controller.wait_online("dev-a")
        assert_lock_runs(controller, agent)
        stranger = Client(mqtt_port, None, None)
        assert stranger.refused is not None  # anonymous: not authorised
        stranger.close()
    finally:
        agent.stop()
        controller.stop()


def test_the_shipped_controller_unit_may_open_a_descriptor_per_device_of_the_fleet_it_claims() -> None:
    unit = (UNITS / "tether.service").read_text()
    [limit] = unit_directives("tether.service").get("LimitNOFILE", ["the default of 1024"])
    claimed = re.search(r"([\d,]+) devices", unit)
    assert claimed is not None, "the unit says which fleet its limits are for"
    assert limit.isdigit(), limit
    assert int(limit) > int(claimed.group(1).replace(",", ""))


# --- Refusing an anonymous broker beyond loopback ----------------------------------------------------------------


def test_serve_refuses_to_embed_an_anonymous_broker_beyond_loopback(tmp_path: Path) -> None:
    mqtt_port = free_port()
    done = run_cli(
        "tether",
        "serve",
        "--db",
        str(tmp_path / "tether.db"),
        "--http-listen",
        f"127.0.0.1:{free_port()}",
        "--mqtt-listen",
        f"0.0.0.0:{mqtt_port}",
        "--embedded-broker",
        "amqtt",
        timeout=20,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    for fragment in ("0.0.0.0", "anonymous", "--broker-auth", "--allow-anonymous-broker"):
        assert fragment in line


def test_serve_embeds_an_anonymous_broker_beyond_loopback_only_when_told_to_and_says_so(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    process = serve(
        tmp_path,
        "--http-listen",
        f"127.0.0.1:{http_port}",
        "--mqtt-listen",
        f"0.0.0.0:{mqtt_port}",
        "--embedded-broker",
        "amqtt",
        "--allow-anonymous-broker",
    )
    try:
        wait_for("the REST API", lambda: api_answers(http_port), timeout=20)
        assert "admits anonymous clients: anyone who reaches it" in process.output()
    finally:
        assert process.stop() == 0


# --- Which broker is embedded -------------------------------------------------------------------------------------


def test_serve_embeds_mosquitto_when_it_is_installed_and_amqtt_when_not(tmp_path: Path) -> None:
    with_mosquitto = {**os.environ, "PATH": f"{BIN}{os.pathsep}/usr/sbin{os.pathsep}/usr/bin{os.pathsep}/bin"}
    without = {**os.environ, "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    for env, chosen in [(with_mosquitto, "mosquitto"), (without, "amqtt")]:
        work = tmp_path / chosen
        work.mkdir()
        http_port, mqtt_port = free_port(), free_port()
        process = serve(
            work, "--http-listen", f"127.0.0.1:{http_port}", "--mqtt-listen", f"127.0.0.1:{mqtt_port}", env=env
        )
        try:
            wait_for("the REST API", lambda: api_answers(http_port), timeout=20)  # noqa: B023 -- awaited here
            assert (
                f"embedded {chosen} broker listening on mqtt://127.0.0.1:{mqtt_port} (the default" in process.output()
            )
            assert (work / "broker" / "mosquitto.conf").exists() == (chosen == "mosquitto")
            Client(mqtt_port, None, None).close()  # it serves MQTT on the port asked
        finally:
            assert process.stop() == 0


# --- Passwords out of argv ----------------------------------------------------------------------------------------


def test_no_broker_password_is_in_the_command_line_of_the_controller_or_the_agents(
    secured: tuple[PersistentMosquitto, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, credentials = secured
    password_file = tmp_path / "controller-password"
    password_file.write_text(credentials["tether-controller"] + "\n")
    controller = Controller(
        tmp_path,
        f"mqtt://tether-controller@127.0.0.1:{broker.port}",
        "--broker-password-file",
        str(password_file),
    )
    agents: list[Agent] = []
    try:
        with monkeypatch.context() as patched:  # dev-a: from the environment
            patched.setenv("TETHER_BROKER_PASSWORD", credentials["dev-a"])
            agents.append(Agent(tmp_path, f"mqtt://dev-a@127.0.0.1:{broker.port}", "dev-a"))
        (tmp_path / "dev-b-password").write_text(credentials["dev-b"])  # dev-b: a file its TOML config names
        config = tmp_path / "dev-b.toml"
        config.write_text(f'broker_password_file = "{tmp_path / "dev-b-password"}"\n')
        agents.append(Agent(tmp_path, f"mqtt://dev-b@127.0.0.1:{broker.port}", "dev-b", "--config", str(config)))
        controller.wait_online("dev-a", "dev-b")
        for agent in agents:
            assert_lock_runs(controller, agent)
        for pid in [controller.process.popen.pid, *(agent.process.popen.pid for agent in agents)]:
            shown = command_line(pid)
            assert not any(password in shown for password in credentials.values()), shown
        for process in [controller.process, *(agent.process for agent in agents)]:
            assert "visible" not in process.output()
            assert not any(password in process.output() for password in credentials.values())
    finally:
        for agent in agents:
            agent.stop()
        controller.stop()


def test_a_password_given_in_the_broker_url_still_works_and_is_warned_about_once(
    secured: tuple[PersistentMosquitto, dict[str, str]], tmp_path: Path
) -> None:
    broker, credentials = secured
    controller = Controller(
        tmp_path, f"mqtt://tether-controller:{credentials['tether-controller']}@127.0.0.1:{broker.port}"
    )
    agent = Agent(tmp_path, f"mqtt://dev-a:{credentials['dev-a']}@127.0.0.1:{broker.port}", "dev-a")
    try:
        controller.wait_online("dev-a")
        for process in (controller.process, agent.process):
            assert process.output().count("is visible to every local user in ps") == 1, process.output()
            assert "TETHER_BROKER_PASSWORD" in process.output()
    finally:
        agent.stop()
        controller.stop()


def test_a_password_given_twice_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("from-file")
    done = run_cli(
        "tetherd",
        "run",
        "--broker",
        "mqtt://dev-a:from-url@127.0.0.1:1",
        "--broker-password-file",
        str(tmp_path / "password"),
        "--device-id",
        "dev-a",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert done.returncode == 78
    [line] = done.stderr.strip().splitlines()
    assert "password is given twice" in line
    assert not any(secret in line for secret in ("from-url", "from-file"))


# --- Private files outside systemd --------------------------------------------------------------------------------


def test_every_file_the_controller_and_agent_create_outside_systemd_is_private(tmp_path: Path) -> None:
    """Under a login shell's umask 022, the database (and its WAL/SHM), signing keys, artifacts, the managed
    Mosquitto's files, broker logins and the agent's journal are 0600, their directories 0700."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with umask(0o022):
        auth = tmp_path / "auth"
        printed = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a")
        credentials = dict(line.split(" ", 1) for line in printed.splitlines())
        (tmp_path / "controller").mkdir()
        controller = Controller(
            tmp_path / "controller", None, "--embedded-broker", "mosquitto", "--broker-auth", str(auth)
        )
        agent = Agent(tmp_path, f"mqtt://dev-a:{credentials['dev-a']}@127.0.0.1:{controller.mqtt_port}", "dev-a")
    agent.tools.add("grim", script='printf \'\\211PNG\\r\\n\\032\\n\' > "$1"; head -c 64 /dev/zero >> "$1"')
    modes: dict[str, int] = {}
    try:
        controller.wait_online("dev-a")
        created = controller.create(
            {"operation_type": "CAPTURE_SCREENSHOT", "operation_device_query": {"device_id": "dev-a"}}
        )
        assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
        download = controller.http.get(f"/v0/operations/{created['id']}/devices/dev-a/artifact")
        assert download.content == png
        modes.update(modes_under(tmp_path))  # while they run: the database's WAL and SHM files exist
    finally:
        agent.stop()
        controller.stop()
    modes.update(modes_under(tmp_path))
    made_by_the_test = {"controller", "controller/controller.log", "dev-a", "dev-a/agent.log", "dev-a/boot_id"}
    made = {name: mode for name, mode in modes.items() if name not in made_by_the_test and "dev-a/bin" not in name}
    for expected in [
        "auth/passwords",
        "auth/controller.secret",
        "controller/tether.db",
        "controller/tether.db-wal",
        "controller/signing",
        "controller/artifacts",
        "controller/broker/mosquitto.conf",
        "controller/broker/mosquitto.log",
        "dev-a/state/journal.db",
        "dev-a/state/work",
    ]:
        assert expected in made, sorted(made)
    assert {name: oct(mode) for name, mode in made.items() if mode & 0o077} == {}


def modes_under(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode) for path in root.rglob("*")}
