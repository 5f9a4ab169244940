"""NOTIFY_DEVICE on a real Debian: `wall` reaches the terminal of a real SSH login, listed by utmp, not logind."""

import subprocess

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm


def test_a_message_reaches_the_terminal_of_a_logged_in_user(lab: Lab) -> None:
    argv = lab.machine.ssh_argv("sleep 60", terminal=True)
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as login:
        try:
            # utmp, not logind: OpenSSH registers the logind session before the terminal exists.
            wait_for("the login's terminal in utmp", lambda: "pts/" in lab.machine.output("who"), 30, 1)
            result = lab.run("NOTIFY_DEVICE", {"title": "Maintenance", "message": "This kiosk restarts at 14:00."})
            assert result["status"] == "SUCCESSFUL", str(result)
            assert any(terminal.startswith("pts/") for terminal in result["result"]["terminals"])
        finally:
            login.kill()
        shown = login.communicate(timeout=10)[0].decode(errors="replace")
    assert "Broadcast message from root@tether-vm" in shown
    assert "Maintenance" in shown
    assert "This kiosk restarts at 14:00." in shown
