"""OS update policy on a real Debian: unattended-upgrades' apt settings and apt-daily-upgrade's timer, and a pause
that systemd itself enforces (the upgrade service's condition fails while the drop-in is there)."""

import pytest

from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm

TIMER = "apt-daily-upgrade.timer"
SERVICE = "apt-daily-upgrade.service"


def test_a_windowed_policy_enables_the_timer_in_its_window_and_manual_disables_it(lab: Lab) -> None:
    result = lab.run(
        "SET_OS_UPDATE_POLICY", {"policy": "windowed", "window_start": "02:00", "window_end": "04:00", "reboot": False}
    )
    assert result["status"] == "SUCCESSFUL", str(result)
    assert lab.machine.output(f"systemctl is-enabled {TIMER}") == "enabled"
    assert "02:00:00" in lab.machine.output(f"systemctl show -p TimersCalendar --value {TIMER}")
    assert lab.machine.output("apt-config shell VALUE APT::Periodic::Unattended-Upgrade") == "VALUE='always'"

    manual = lab.run("SET_OS_UPDATE_POLICY", {"policy": "manual"})
    assert manual["status"] == "SUCCESSFUL", str(manual)
    assert lab.machine.ssh(f"systemctl is-enabled {TIMER}", check=False).stdout.strip() == "disabled"
    assert lab.machine.output("apt-config shell VALUE APT::Periodic::Unattended-Upgrade") == "VALUE='0'"


def test_a_pause_stops_systemd_from_running_upgrades_until_it_is_lifted(lab: Lab) -> None:
    result = lab.run("PAUSE_OS_UPDATES", {"paused": True, "days": 7})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert lab.machine.output("systemctl is-enabled tether-os-updates-resume.timer") == "enabled"
    lab.machine.ssh(f"systemctl start {SERVICE}")
    assert lab.machine.output(f"systemctl show -p ConditionResult --value {SERVICE}") == "no"

    lifted = lab.run("PAUSE_OS_UPDATES", {"paused": False})
    assert lifted["status"] == "SUCCESSFUL", str(lifted)
    assert lifted["result"]["was_paused"] is True
    assert "tether-pause" not in lab.machine.output(f"systemctl show -p DropInPaths --value {SERVICE}")
    assert lab.machine.ssh("systemctl is-enabled tether-os-updates-resume.timer", check=False).returncode != 0
