"""REMOVE_AGENT and REMOVE_DEVICE on a real Debian: the agent's unit is disabled and stopped by systemd, and a removed
device's credentials and state are gone from the disk. They end the session's agent, so conftest runs them last."""

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm


def unit_state(lab: Lab) -> tuple[str, str]:
    enabled = lab.machine.ssh("systemctl is-enabled tetherd", check=False).stdout.strip()
    active = lab.machine.ssh("systemctl is-active tetherd", check=False).stdout.strip()
    return enabled, active


def test_remove_agent_disables_and_stops_the_unit_and_leaves_the_config(lab: Lab) -> None:
    result = lab.run("REMOVE_AGENT")
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["unit"] == "tetherd.service"
    wait_for("the agent's unit disabled and stopped", lambda: unit_state(lab) == ("disabled", "inactive"), 60, 1)
    lab.wait_online(False)
    assert lab.machine.ssh("test -e /etc/tether/agent.toml && test -d /var/lib/tetherd", check=False).returncode == 0


def test_remove_device_stops_the_agent_and_deletes_its_credentials_and_state(lab: Lab) -> None:
    lab.machine.ssh("systemctl enable --now tetherd")
    lab.wait_online()
    result = lab.run("REMOVE_DEVICE")
    assert result["status"] == "SUCCESSFUL", str(result)
    removed = set(result["result"]["removes"])
    assert {"/etc/tether/agent.toml", "/etc/tether/broker-password", "/var/lib/tetherd"} <= removed
    wait_for("the agent's unit disabled and stopped", lambda: unit_state(lab) == ("disabled", "inactive"), 60, 1)
    lab.wait_online(False)
    for path in removed:
        assert lab.machine.ssh(f"test -e {path}", check=False).returncode == 1, path
