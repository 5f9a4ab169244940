"""TLS to an external Mosquitto: the controller and a real `tetherd` log in with client certificates (mutual TLS),
each identity being the certificate's common name, under the ACL `tether broker acl` writes."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import ThrowawayCa
from tests.e2e.harness import Agent, Controller, PersistentMosquitto, assert_lock_runs, run_cli, tether, wait_for


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[PersistentMosquitto, ThrowawayCa]]:
    """Mosquitto serving TLS only, requiring a client certificate whose common name is the username."""
    ca = ThrowawayCa(tmp_path / "pki")
    server_cert, server_key = ca.issue("broker", server=True)
    tether("broker", "acl", "--dir", str(tmp_path / "auth"))
    config = (
        f"cafile {ca.ca_file}",
        f"certfile {server_cert}",
        f"keyfile {server_key}",
        "require_certificate true",
        "use_identity_as_username true",
        f"acl_file {tmp_path / 'auth' / 'acl'}",
    )
    broker = PersistentMosquitto(tmp_path / "mosquitto", extra_config=config, anonymous=False).start()
    try:
        yield broker, ca
    finally:
        broker.stop()


def agent_config(tmp_path: Path, ca: ThrowawayCa, device_id: str, port: int) -> Path:
    cert, key = ca.issue(device_id)
    config = tmp_path / f"{device_id}.toml"
    config.write_text(
        f'broker = "mqtts://127.0.0.1:{port}"\n'
        f'tls_ca_file = "{ca.ca_file}"\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
    )
    return config


def test_controller_and_agent_run_an_operation_over_mutual_tls(
    tls_broker: tuple[PersistentMosquitto, ThrowawayCa], tmp_path: Path
) -> None:
    broker, ca = tls_broker
    cert, key = ca.issue("tether-controller")
    url = f"mqtts://127.0.0.1:{broker.port}"
    controller = Controller(
        tmp_path, url, "--broker-ca", str(ca.ca_file), "--broker-cert", str(cert), "--broker-key", str(key)
    )
    config = agent_config(tmp_path, ca, "dev-a", broker.port)
    agent = Agent(tmp_path, url, "dev-a", "--config", str(config))
    try:
        controller.wait_online("dev-a")
        assert_lock_runs(controller, agent)
    finally:
        agent.stop()
        controller.stop()
    assert "mqtts://127.0.0.1" in controller.process.output()


def test_a_certificate_from_another_ca_is_refused(
    tls_broker: tuple[PersistentMosquitto, ThrowawayCa], tmp_path: Path
) -> None:
    broker, _ = tls_broker
    stranger = ThrowawayCa(tmp_path / "stranger-pki", name="Stranger CA")
    config = agent_config(tmp_path, stranger, "dev-a", broker.port)
    agent = Agent(tmp_path, f"mqtts://127.0.0.1:{broker.port}", "dev-a", "--config", str(config))
    try:
        # It does not trust the broker's certificate, and the broker does not trust its own: it never connects.
        wait_for("the refusal in the agent's log", lambda: "CERTIFICATE_VERIFY_FAILED" in agent.process.output())
        assert "connected to" not in agent.process.output()
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ('tls_ca_file = "/nonexistent/ca.pem"\n', "cannot use the CA file /nonexistent/ca.pem"),
        ('tls_cert_file = "/tmp/x.pem"\n', "needs both its certificate file and its key file"),
    ],
)
def test_unusable_tls_settings_are_one_line_and_exit_78(tmp_path: Path, settings: str, problem: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'broker = "mqtts://127.0.0.1:8883"\ndevice_id = "dev-a"\nstate_dir = "{tmp_path}"\n{settings}')
    done = run_cli("tetherd", "run", "--config", str(config))
    assert done.returncode == 78
    assert problem in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_tls_settings_need_an_mqtts_broker(tmp_path: Path) -> None:
    done = run_cli("tether", "serve", "--broker", "mqtt://127.0.0.1:1", "--broker-ca", "/tmp/ca.pem")
    assert done.returncode == 2
    assert "needs an mqtts:// --broker" in done.stderr
