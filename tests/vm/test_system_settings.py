"""Settings, certificates and logs on a real Debian: what the result says is read back from the system itself."""

import gzip
import re
import tempfile
from pathlib import Path

import pytest

from tests.certs import ThrowawayCa
from tests.e2e.harness import wait_for
from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm


def test_the_time_zone_changes_in_timedatectl_and_the_device_announces_it(lab: Lab) -> None:
    original = lab.machine.output("timedatectl show -p Timezone --value")
    result = lab.run("SET_TIMEZONE", {"timezone": "Asia/Tokyo"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert lab.machine.output("timedatectl show -p Timezone --value") == "Asia/Tokyo"
    assert lab.machine.output("date +%Z") == "JST"
    wait_for("the new zone announced", lambda: lab.device()["time_zone"] == "Asia/Tokyo", timeout=30)
    assert lab.run("SET_TIMEZONE", {"timezone": original})["status"] == "SUCCESSFUL"
    assert lab.machine.output("timedatectl show -p Timezone --value") == original


def test_a_language_the_system_lacks_is_generated_and_works(lab: Lab) -> None:
    assert "de_DE.utf8" not in lab.machine.output("locale -a").split()
    result = lab.run("SET_DEVICE_LANGUAGE", {"language": "de-DE"}, timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["locale"] == "de_DE.UTF-8"
    assert result["result"]["generated"] is True
    assert "de_DE.utf8" in lab.machine.output("locale -a").split()
    assert lab.machine.output("localectl show -p SystemLocale --value 2>/dev/null || cat /etc/default/locale")
    # The locale works: a program started under it formats in German.
    assert lab.machine.output("LC_ALL=de_DE.UTF-8 date -d 2026-12-06 +%A") == "Sonntag"


def test_a_certificate_is_trusted_by_the_system_store_and_removed_again(lab: Lab) -> None:
    with tempfile.TemporaryDirectory() as directory:
        ThrowawayCa(Path(directory), name="Tether VM tier root")
        pem = (Path(directory) / "ca.pem").read_text()
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    body = "".join(pem.splitlines()[1:-1])
    result = lab.run("INSTALL_CERTIFICATE", {"name": "vm-tier-root", "certificate": pem}, timeout=180)
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["path"] == "/usr/local/share/ca-certificates/tether-vm-tier-root.crt"
    assert (
        lab.machine.ssh(f"test -L /etc/ssl/certs/tether-vm-tier-root.pem && grep -q {body[:60]} {bundle}").returncode
        == 0
    )

    removed = lab.run("UNINSTALL_CERTIFICATE", {"name": "vm-tier-root"}, timeout=180)
    assert removed["status"] == "SUCCESSFUL", str(removed)
    assert lab.machine.ssh(f"grep -q {body[:60]} {bundle}", check=False).returncode == 1
    assert lab.machine.ssh("test -e /etc/ssl/certs/tether-vm-tier-root.pem", check=False).returncode == 1


def test_collected_logs_are_the_real_journal(lab: Lab) -> None:
    lab.machine.ssh("logger -t vm-tier 'a line only the journal holds'")
    # journald takes the line from /dev/log in its own time: under emulation, not always before the next command.
    wait_for("the line in the journal", lambda: lab.machine.output("journalctl -q -t vm-tier -n 1"), 30, 1)
    result = lab.run("COLLECT_LOGS", {"since_minutes": 30, "max_lines": 5000})
    assert result["status"] == "SUCCESSFUL", str(result)
    text = gzip.decompress(lab.artifact(result)).decode()
    assert "vm-tier[" in text
    assert "a line only the journal holds" in text
    assert "tetherd" in text

    agent_log = lab.run("REQUEST_DPCLOG", {"since_minutes": 30, "max_lines": 5000})
    assert agent_log["status"] == "SUCCESSFUL", str(agent_log)
    lines = gzip.decompress(lab.artifact(agent_log)).decode().splitlines()
    assert lines
    # The unit's journal: tetherd's lines and its tools' (rfkill, nmcli), none of another unit's such as sshd.
    entries = [line for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line)]  # not a message's further lines
    assert any(" tetherd[" in line for line in entries)
    assert [line for line in entries if " sshd[" in line or " vm-tier[" in line] == []
    assert "a line only the journal holds" not in "\n".join(lines)


def test_lock_without_a_graphical_session_fails_and_says_so(lab: Lab) -> None:
    result = lab.run("LOCK")
    assert result["status"] == "FAILED", str(result)
    assert "no graphical session" in result["failure_reason"]


def test_a_blueprint_applies_its_settings_in_order(lab: Lab) -> None:
    original = lab.machine.output("timedatectl show -p Timezone --value")
    steps = [
        {"operation_type": "SET_TIMEZONE", "arguments": {"timezone": "America/Sao_Paulo"}},
        {"operation_type": "UPDATE_DEVICE_CONFIG", "arguments": {"tags": ["blueprinted"]}},
    ]
    result = lab.run("UPDATE_BLUEPRINT", {"name": "vm-baseline", "steps": steps})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert [step["operation_type"] for step in result["result"]["steps"]] == ["SET_TIMEZONE", "UPDATE_DEVICE_CONFIG"]
    assert lab.machine.output("timedatectl show -p Timezone --value") == "America/Sao_Paulo"
    wait_for("the blueprint's tags announced", lambda: lab.device()["tags"] == ["blueprinted"], timeout=30)
    lab.run("SET_TIMEZONE", {"timezone": original})
    lab.run("UPDATE_DEVICE_CONFIG", {"reset": True})
