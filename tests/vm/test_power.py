"""REBOOT and SHUT_DOWN for real: the VM restarts (or powers off and is powered on again), the agent comes back
under systemd, sees the new boot id and reports SUCCESSFUL once."""

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import DEVICE_ID, Lab

pytestmark = pytest.mark.vm


def test_reboot_restarts_the_machine_and_succeeds_once_with_the_new_boot_id(lab: Lab) -> None:
    before = lab.machine.boot_id()
    boots = int(lab.machine.output("journalctl --list-boots --no-pager | wc -l"))
    result = lab.run("REBOOT", timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    after = lab.machine.boot_id()
    assert after != before
    assert (result["result"]["previous_boot_id"], result["result"]["boot_id"]) == (before, after)
    # One reboot, not a loop of them: the journal knows exactly one boot more.
    assert lab.machine.output("journalctl --list-boots --no-pager | wc -l") == str(boots + 1)


def test_shut_down_powers_the_machine_off_and_succeeds_when_it_is_powered_on_again(lab: Lab) -> None:
    before = lab.machine.boot_id()
    created = lab.controller.create({"operation_type": "SHUT_DOWN", "operation_device_query": {"device_id": DEVICE_ID}})
    assert lab.machine.wait_exit(timeout=180) == 0
    lab.wait_online(False)
    assert lab.controller.device_results(created["id"])[DEVICE_ID]["status"] == "EXECUTING"
    lab.machine.start()
    operation = lab.controller.wait_finished(created["id"], timeout=180)
    result = lab.controller.device_results(created["id"])[DEVICE_ID]
    assert operation["state"] == "COMPLETED"
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["previous_boot_id"] == before != result["result"]["boot_id"] == lab.machine.boot_id()
    wait_for("the agent back online", lambda: lab.device()["online"], timeout=120)
