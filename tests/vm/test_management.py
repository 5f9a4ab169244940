"""The agent itself and its configured actions on a real Debian: NUDGE_DEVICE, UPDATE_DEVICE_CONFIG, APPLY_APP_CONFIG
with a real unit restarted, SYNC_CONTENT, custom actions (RUN_CUSTOM_ACTION, CONVERGE, WIPE) and REQUEST_BUGREPORT.

The custom actions are the ones the lab's install configured (tests/vm/conftest.py): WIPE's stands in for a reflash
with a file it leaves behind, since a real wipe would end the session's VM.
"""

import hashlib
import io
import json
import tarfile

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import WEB_PORT, Lab
from tests.vm.machine import HOST_ADDRESS

pytestmark = pytest.mark.vm

APP_UNIT = """[Unit]
Description=A kiosk app of the VM tier, restarted by APPLY_APP_CONFIG
[Service]
ExecStart=/bin/sleep infinity
"""


def test_a_nudge_reads_the_system_again_and_announces_it(lab: Lab) -> None:
    result = lab.run("NUDGE_DEVICE")
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["announced"] is True
    assert "hostname" in result["result"]["inventory"]
    assert lab.device()["inventory"]["hostname"] == "tether-vm"
    assert result["result"]["time_zone"] == lab.machine.output("timedatectl show -p Timezone --value")


def test_device_config_changes_what_the_device_announces(lab: Lab) -> None:
    result = lab.run("UPDATE_DEVICE_CONFIG", {"tags": ["vm-tier", "debian"]})
    assert result["status"] == "SUCCESSFUL", str(result)
    wait_for("the tags announced", lambda: lab.device()["tags"] == ["vm-tier", "debian"], timeout=30)
    assert lab.run("UPDATE_DEVICE_CONFIG", {"reset": True})["status"] == "SUCCESSFUL"
    wait_for("the tags reset", lambda: lab.device()["tags"] == [], timeout=30)


def test_an_app_config_is_written_and_its_running_unit_restarted(lab: Lab) -> None:
    lab.machine.write("/etc/systemd/system/lab-kiosk.service", APP_UNIT)
    lab.machine.ssh("systemctl daemon-reload && systemctl start lab-kiosk")
    before = lab.machine.output("systemctl show lab-kiosk -p MainPID --value")
    config = {"start_url": "https://intranet.example/", "zoom": 1.25}
    result = lab.run("APPLY_APP_CONFIG", {"app": "kiosk", "config": config, "restart_unit": "lab-kiosk.service"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["restarted"] is True
    assert result["result"]["unit_state"] == "active"
    assert json.loads(lab.machine.output("cat /etc/tether/app-config/kiosk.json")) == config
    assert lab.machine.output("stat -c %a /etc/tether/app-config/kiosk.json") == "644"
    assert lab.machine.output("systemctl show lab-kiosk -p MainPID --value") != before
    lab.machine.ssh("systemctl stop lab-kiosk")


def test_content_is_downloaded_checked_and_stored(lab: Lab) -> None:
    content = b"menu of the day\n" * 100
    (lab.web_root / "menu.txt").write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    url = f"http://{HOST_ADDRESS}:{WEB_PORT}/menu.txt"
    result = lab.run("SYNC_CONTENT", {"file": {"url": url, "sha256": digest}, "path": "signage/menu.txt"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert lab.machine.output("sha256sum /var/lib/tetherd/content/signage/menu.txt").split()[0] == digest

    wrong = lab.run("SYNC_CONTENT", {"file": {"url": url, "sha256": "0" * 64}, "path": "signage/other.txt"})
    assert wrong["status"] == "FAILED", str(wrong)
    assert "sha256" in wrong["failure_reason"].lower()
    assert lab.machine.ssh("test -e /var/lib/tetherd/content/signage/other.txt", check=False).returncode == 1


def test_configured_actions_run_as_configured(lab: Lab) -> None:
    stamped = lab.run("RUN_CUSTOM_ACTION", {"action": "stamp", "parameters": {"name": "custom"}})
    assert stamped["status"] == "SUCCESSFUL", str(stamped)
    assert lab.machine.output("cat /root/stamp-custom") == "custom"

    converged = lab.run("CONVERGE")
    assert converged["status"] == "SUCCESSFUL", str(converged)
    assert lab.machine.output("cat /root/stamp-converged") == "converged"

    wiped = lab.run("WIPE")
    assert wiped["status"] == "SUCCESSFUL", str(wiped)
    assert lab.machine.output("cat /root/stamp-wiped") == "wiped"
    lab.machine.ssh("rm /root/stamp-custom /root/stamp-converged /root/stamp-wiped")


def test_a_bug_report_holds_the_real_journal_and_system_state(lab: Lab) -> None:
    result = lab.run("REQUEST_BUGREPORT", timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    with tarfile.open(fileobj=io.BytesIO(lab.artifact(result)), mode="r:gz") as archive:
        members = {member.name: archive.extractfile(member) for member in archive.getmembers() if member.isfile()}
        texts = {name: file.read().decode(errors="replace") for name, file in members.items() if file is not None}
    joined = "\n".join(texts.values())
    assert "tetherd" in joined
    assert "10.0.2.15" in joined  # ip address
    assert "/dev/vda" in joined  # df -h
