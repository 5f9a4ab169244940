"""tetherd as systemd/install-tetherd.sh installs it, on a real Debian 12 under systemd, and RUN_SHELL_SCRIPT."""

import pytest

from tests.vm.conftest import DEVICE_ID, Lab

pytestmark = pytest.mark.vm


def test_the_installed_agent_runs_under_systemd_as_shipped_and_announces_the_real_system(lab: Lab) -> None:
    shown = lab.machine.output(
        "systemctl show tetherd.service -p Type -p ActiveState -p SubState -p WatchdogUSec -p User -p ExecStart"
    )
    properties = dict(line.split("=", 1) for line in shown.splitlines())
    assert properties["Type"] == "notify"
    assert (properties["ActiveState"], properties["SubState"]) == ("active", "running")
    assert properties["WatchdogUSec"] == "1min"
    assert "/opt/tether/bin/tetherd run --config /etc/tether/agent.toml" in properties["ExecStart"]
    assert lab.machine.output("stat -c %a /etc/tether/agent.toml /etc/tether/broker-password") == "600\n600"
    device = lab.device()
    assert device["platform"] == "linux"
    inventory = device["inventory"]
    assert inventory["os"]["id"] == "debian"
    assert inventory["os"]["version"] == "12"
    assert inventory["hostname"] == "tether-vm"
    assert inventory["kernel"] == lab.machine.output("uname -r")


def test_a_shell_script_runs_as_root_on_the_vm_and_reports_its_output_and_exit_code(lab: Lab) -> None:
    result = lab.run(
        "RUN_SHELL_SCRIPT",
        {"script": "id -un\nhostname\ncat /etc/debian_version >&2\ntouch /root/ran-by-tether\nexit 3"},
    )
    assert result["status"] == "FAILED", str(result)
    assert result["result"]["exit_code"] == 3
    assert result["result"]["stdout"] == "root\ntether-vm\n"
    assert result["result"]["stderr"].startswith("12.")
    # Under the shipped unit the script has a private /tmp and /var/tmp (PrivateTmp=yes); /root is the real one.
    assert lab.machine.ssh("test -e /root/ran-by-tether && rm /root/ran-by-tether", check=False).returncode == 0
    assert DEVICE_ID in lab.machine.output("cat /etc/tether/agent.toml")
