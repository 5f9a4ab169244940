"""Issue 7's "done when": a device provisioned by systemd/install-tetherd.sh, on a broker under `tether broker acl`
and with signing on, runs an operation from the controller, and every attack is refused with nothing executed.

The installer runs for real under a temporary --root, with a recording fake `systemctl` first on its PATH; the
agent then runs with the config the installer wrote (its state and boot id redirected into the test's directory).
"""

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from controller.signing_keys import SigningKeys
from tests.e2e.harness import BIN, Agent, Controller, PersistentMosquitto, assert_lock_runs, tether, wait_for
from tests.fakes import FakeTools
from tests.fixtures_brokers import free_port

INSTALLER = Path(__file__).resolve().parents[2] / "systemd" / "install-tetherd.sh"
ENVIRONMENT = BIN.parent


@dataclass
class Site:
    root: Path
    systemctl: FakeTools
    broker: PersistentMosquitto
    credentials: dict[str, str]
    controller: Controller
    public_key: str


def install(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{site.systemctl.directory}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(
        ["bash", str(INSTALLER), "--root", str(site.root), "--env", str(ENVIRONMENT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A broker under the ACL with logins for the controller and dev-x, and the controller, up."""
    printed = tether("broker", "acl", "--dir", str(tmp_path / "auth"), "--device", "dev-x", "--device", "dev-evil")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    settings = tuple((tmp_path / "auth" / "mosquitto-tether.conf").read_text().splitlines())
    broker = PersistentMosquitto(tmp_path / "mosquitto", extra_config=settings, anonymous=False).start()
    public_key = tether("keys", "public", "--db", str(tmp_path / "tether.db")).strip()
    url = f"mqtt://tether-controller:{credentials['tether-controller']}@127.0.0.1:{broker.port}"
    controller = Controller(tmp_path, url)
    systemctl = FakeTools(tmp_path / "fake-bin")
    systemctl.add("systemctl")
    try:
        yield Site(tmp_path / "root", systemctl, broker, credentials, controller, public_key)
    finally:
        controller.stop()
        broker.stop()


def device_url(site: Site, user: str) -> str:
    return f"mqtt://{user}:{site.credentials[user]}@127.0.0.1:{site.broker.port}"


def login_url(site: Site, user: str) -> str:
    """The broker URL with the login's user name only: its password goes in a file."""
    return f"mqtt://{user}@127.0.0.1:{site.broker.port}"


def password_file(site: Site, user: str) -> Path:
    path = site.root.parent / f"{user}-password"
    path.write_text(site.credentials[user] + "\n")
    return path


def publish(site: Site, user: str, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
    client.username_pw_set(user, site.credentials[user])
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    info = client.publish(topic, payload, qos=1, retain=True)
    # The broker may drop an attacker's connection for a denied publish: that is refusal too.
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(3)
    client.loop_stop()
    client.disconnect()


def test_a_device_installed_by_the_script_runs_signed_operations_and_refuses_every_attack(site: Site) -> None:
    done = install(
        site,
        "--broker",
        login_url(site, "dev-x"),
        "--broker-password-file",
        str(password_file(site, "dev-x")),
        "--device-id",
        "dev-x",
        "--trusted-key",
        site.public_key,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    config = site.root / "etc" / "tether" / "agent.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    secret = site.root / "etc" / "tether" / "broker-password"
    assert secret.read_text() == site.credentials["dev-x"] + "\n"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert site.credentials["dev-x"] not in config.read_text()
    assert 'broker_password_file = "/etc/tether/broker-password"' in config.read_text()
    assert (site.root / "etc" / "tether").stat().st_mode & 0o777 == 0o700
    unit = (site.root / "etc" / "systemd" / "system" / "tetherd.service").read_text()
    assert f"ExecStart={ENVIRONMENT}/bin/tetherd run --config /etc/tether/agent.toml" in unit
    assert site.systemctl.calls("systemctl") == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "tetherd.service"],
    ]

    # What systemd would start, with its state and boot id redirected into the test's directory.
    agent = Agent(
        site.root.parent,
        login_url(site, "dev-x"),
        "dev-x",
        "--config",
        str(config),
        "--broker-password-file",
        str(secret),
    )
    try:
        site.controller.wait_online("dev-x")
        assert_lock_runs(site.controller, agent)
        assert site.credentials["dev-x"] not in command_line(agent.process.popen.pid)

        marker = site.root.parent / "attacked"
        body = {
            "command_id": "attack-1",
            "operation_id": "attack",
            "device_id": "dev-x",
            "operation_type": "RUN_SHELL_SCRIPT",
            "arguments": {"script": f"touch {marker}"},
            "issued_at": "2026-12-01T00:00:00Z",
            "start_before": "2099-01-01T00:00:00Z",
        }
        topic = "tether/v1/devices/dev-x/commands/attack-1"
        publish(site, "dev-evil", topic, json.dumps(body).encode())  # another device: the ACL refuses it
        stranger = SigningKeys(site.root.parent / "stranger-keys").signer()
        publish(site, "tether-controller", topic, stranger.signed(body))  # a broker insider, with the wrong key
        wait_for("the refusal", lambda: "signature invalid" in agent.process.output(), timeout=15)
        body["command_id"], topic = "attack-2", "tether/v1/devices/dev-x/commands/attack-2"
        publish(site, "tether-controller", topic, json.dumps(body).encode())  # unsigned
        wait_for("the second refusal", lambda: "attack-2 (RUN_SHELL_SCRIPT) refused" in agent.process.output())
        assert not marker.exists()
        assert len(agent.locks()) == 1
    finally:
        agent.stop()

    removed = install(site, "--uninstall", "--purge")
    assert removed.returncode == 0, removed.stderr
    assert not (site.root / "etc" / "systemd" / "system" / "tetherd.service").exists()
    assert not (site.root / "etc" / "tether").exists()
    assert ["systemctl", "disable", "--now", "tetherd.service"] in site.systemctl.calls("systemctl")


def command_line(pid: int) -> str:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_installer_takes_each_node_of_a_broker_cluster_and_the_agent_fails_over_to_a_live_one(
    site: Site,
) -> None:
    down = f"mqtt://dev-x@127.0.0.1:{free_port()}"  # the first node, down
    done = install(
        site,
        *("--broker", down, "--broker", login_url(site, "dev-x")),
        *("--broker-password-file", str(password_file(site, "dev-x"))),
        *("--device-id", "dev-x", "--trusted-key", site.public_key),
    )
    assert done.returncode == 0, done.stderr
    config = site.root / "etc" / "tether" / "agent.toml"
    assert f'broker = ["{down}", "{login_url(site, "dev-x")}"]' in config.read_text()
    secret = site.root / "etc" / "tether" / "broker-password"
    # As systemd starts it: the nodes from the config alone.
    agent = Agent(site.root.parent, [], "dev-x", "--config", str(config), "--broker-password-file", str(secret))
    try:
        site.controller.wait_online("dev-x")
        assert_lock_runs(site.controller, agent)
    finally:
        agent.stop()


def test_the_installer_takes_the_broker_password_from_the_environment_too(site: Site) -> None:
    done = install(
        site,
        *("--broker", login_url(site, "dev-x"), "--device-id", "dev-x", "--trusted-key", site.public_key),
        env={"TETHER_BROKER_PASSWORD": site.credentials["dev-x"]},
    )
    assert done.returncode == 0, done.stderr
    secret = site.root / "etc" / "tether" / "broker-password"
    assert secret.read_text() == site.credentials["dev-x"] + "\n"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert site.credentials["dev-x"] not in (site.root / "etc" / "tether" / "agent.toml").read_text()


def test_a_password_in_the_installers_broker_url_works_but_is_warned_about(site: Site) -> None:
    done = install(
        site, "--broker", device_url(site, "dev-x"), "--device-id", "dev-x", "--trusted-key", site.public_key
    )
    assert done.returncode == 0, done.stderr
    assert "the password in --broker is visible to every local user in ps" in done.stderr
    assert not (site.root / "etc" / "tether" / "broker-password").exists()


def test_a_password_given_twice_to_the_installer_installs_nothing(site: Site) -> None:
    done = install(
        site,
        *("--broker", device_url(site, "dev-x"), "--broker-password-file", str(password_file(site, "dev-x"))),
        *("--device-id", "dev-x", "--trusted-key", site.public_key),
    )
    assert done.returncode != 0
    assert "the broker password is given twice" in done.stderr
    assert not list((site.root / "etc" / "tether").iterdir())
    assert site.systemctl.calls("systemctl") == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--device-id", "dev-x", "--trusted-key", "ed25519:AAAA"], "--broker is required"),
        (["--broker", "mqtt://h:1", "--device-id", "dev-x"], "--trusted-key is required"),
        (["--broker", "mqtt://h:1", "--device-id", "dev-x", "--trusted-key", "rsa:nope"], "config above is invalid"),
        (["--broker", "ftp://h:1", "--device-id", "dev-x", "--trusted-key", "ed25519:AAAA"], "config above is invalid"),
        (
            [
                "--broker",
                "mqtt://h:1",
                "--broker-password-file",
                "/nonexistent",
                "--device-id",
                "d",
                "--trusted-key",
                "k",
            ],
            "cannot read --broker-password-file /nonexistent",
        ),
    ],
)
def test_a_bad_install_says_why_and_installs_nothing(site: Site, args: list[str], problem: str) -> None:
    done = install(site, *args)
    assert done.returncode != 0
    assert problem in done.stderr
    assert not (site.root / "etc" / "systemd" / "system" / "tetherd.service").exists()
    assert not (site.root / "etc" / "tether" / "agent.toml").exists()
    assert not (site.root / "etc" / "tether" / "broker-password").exists()
    assert site.systemctl.calls("systemctl") == []
