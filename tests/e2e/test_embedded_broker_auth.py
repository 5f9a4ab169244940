"""`tether serve --broker-auth DIR`: the embedded broker (amqtt in-process, or the managed Mosquitto) admits only
the logins `tether broker acl` made and applies the same rules as an external Mosquitto under its ACL."""

import time
from pathlib import Path

import pytest

from tests.certs import ThrowawayCa
from tests.e2e.harness import Agent, Controller, assert_lock_runs, run_cli, tether, wait_for
from tests.e2e.test_broker_acl import SETTLE_S, Client
from tests.fixtures_brokers import free_port


@pytest.mark.parametrize("embedded", ["amqtt", "mosquitto"])
def test_the_embedded_broker_admits_only_its_logins_and_keeps_devices_to_their_own_topics(
    tmp_path: Path, embedded: str
) -> None:
    auth = tmp_path / "auth"
    printed = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a", "--device", "dev-b")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    controller = Controller(tmp_path, None, "--embedded-broker", embedded, "--broker-auth", str(auth))
    port = controller.mqtt_port
    agent = Agent(tmp_path, f"mqtt://dev-b:{credentials['dev-b']}@127.0.0.1:{port}", "dev-b")
    clients: list[Client] = []
    try:
        controller.wait_online("dev-b")
        assert_lock_runs(controller, agent)

        for user, password in [(None, None), ("dev-a", "wrong"), ("dev-z", credentials["dev-a"])]:
            stranger = Client(port, user, password)
            clients.append(stranger)
            assert stranger.refused is not None, user

        watcher = Client(port, "tether-controller", credentials["tether-controller"])
        # dev-a's connections come one after another, with its agent's client id: a second would take the first over.
        reader_a = Client(port, "dev-a", credentials["dev-a"], client_id="tetherd-dev-a")
        clients += [watcher, reader_a]
        watcher.subscribe("tether/v1/devices/+/status/+")
        reader_a.subscribe("tether/v1/devices/dev-b/commands/+")
        reader_a.subscribe("tether/v1/#")
        time.sleep(0.3)
        watcher.publish("tether/v1/devices/dev-b/commands/held", b'{"retained": "for b"}', retain=True)
        time.sleep(SETTLE_S)
        assert reader_a.topics() == []
        reader_a.close()
        attacker = Client(port, "dev-a", credentials["dev-a"], client_id="tetherd-dev-a")
        attacker.try_publish("tether/v1/devices/dev-b/status/held", b'{"forged": true}')
        attacker.try_publish("tether/v1/devices/dev-b/commands/forged", b'{"forged": true}', retain=True)
        attacker.close()
        own = Client(port, "dev-a", credentials["dev-a"], client_id="tetherd-dev-a")
        clients.append(own)
        own.publish("tether/v1/devices/dev-a/status/mine", b'{"own": "status"}')
        wait_for("A's own status", lambda: "tether/v1/devices/dev-a/status/mine" in watcher.topics())
        time.sleep(SETTLE_S)
        assert "tether/v1/devices/dev-b/status/held" not in watcher.topics()
        assert len(agent.locks()) == 1  # the forged command reached nobody
    finally:
        for client in clients:
            client.close()
        agent.stop()
        controller.stop()
    assert credentials["tether-controller"] not in controller.process.output()


def test_broker_auth_that_cannot_be_read_is_one_line_at_start(tmp_path: Path) -> None:
    done = run_cli(
        "tether",
        "serve",
        "--db",
        str(tmp_path / "t.db"),
        "--broker-auth",
        str(tmp_path / "nothing"),
        "--http-listen",
        f"127.0.0.1:{free_port()}",
        "--mqtt-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert done.returncode == 1
    assert "cannot use the broker logins in" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("embedded", ["amqtt", "mosquitto"])
def test_the_embedded_broker_serves_tls_only_with_logins(tmp_path: Path, embedded: str) -> None:
    ca = ThrowawayCa(tmp_path / "pki")
    cert, key = ca.issue("broker", server=True)
    auth = tmp_path / "auth"
    printed = tether("broker", "acl", "--dir", str(auth), "--device", "dev-t")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    controller = Controller(
        tmp_path,
        None,
        *("--embedded-broker", embedded, "--broker-auth", str(auth)),
        *("--mqtt-tls-cert", str(cert), "--mqtt-tls-key", str(key), "--broker-ca", str(ca.ca_file)),
    )
    port = controller.mqtt_port
    config = tmp_path / "dev-t.toml"
    config.write_text(f'tls_ca_file = "{ca.ca_file}"\n')
    agent = Agent(tmp_path, f"mqtts://dev-t:{credentials['dev-t']}@127.0.0.1:{port}", "dev-t", "--config", str(config))
    plain = None
    try:
        controller.wait_online("dev-t")
        assert_lock_runs(controller, agent)
        plain = Client(port, "dev-t", credentials["dev-t"], wait=False)  # no TLS: it never gets a CONNACK
        time.sleep(1.0)
        assert not plain.connected
    finally:
        if plain is not None:
            plain.close()
        agent.stop()
        controller.stop()
    assert f"mqtts://tether-controller@127.0.0.1:{port}" in controller.process.output()
