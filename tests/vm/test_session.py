"""LOCK against a real logind: with no graphical session, with one whose screen locker answers logind's Lock, and
with one that has none. The result must say what happened to the session's LockedHint.

The graphical session is a real logind session of type x11 opened through PAM (runuser -l, pam_systemd) for an
ordinary user, with no display server behind it: logind knows sessions by what PAM registered, not by a screen. The
screen locker is a stand-in for GNOME's or swaylock: a loop that answers logind's Lock signal with SetLockedHint, as
they do once the screen is covered.
"""

import shlex
from collections.abc import Iterator

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm

LOCKER = (
    "dbus-monitor --system --profile \"type='signal',interface='org.freedesktop.login1.Session',member='Lock'\""
    " | while read -r kind time serial sender destination path interface member; do"
    ' [ "$member" = Lock ] && busctl call org.freedesktop.login1 "$path" org.freedesktop.login1.Session'
    " SetLockedHint b true; done"
)


def session_of(lab: Lab, user: str) -> str | None:
    for line in lab.machine.output("loginctl list-sessions --no-legend").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == user:
            return fields[0]
    return None


@pytest.fixture
def graphical_session(lab: Lab) -> Iterator[str]:
    lab.machine.ssh("id kiosk >/dev/null 2>&1 || useradd --create-home kiosk")
    lab.machine.ssh(
        "systemd-run --unit=lab-session -E XDG_SESSION_TYPE=x11 -E XDG_SESSION_CLASS=user"
        " runuser -l kiosk -c 'exec sleep infinity'"
    )
    session = wait_for("kiosk's logind session", lambda: session_of(lab, "kiosk"), 30, 1)
    assert lab.machine.output(f"loginctl show-session {session} -p Type --value") == "x11"
    yield session
    lab.machine.ssh("systemctl stop lab-session lab-locker; loginctl terminate-user kiosk", check=False)
    wait_for("kiosk's session gone", lambda: session_of(lab, "kiosk") is None, 30, 1)


def locked_hint(lab: Lab, session: str) -> str:
    return lab.machine.output(f"loginctl show-session {session} -p LockedHint --value")


def test_a_graphical_session_whose_locker_answers_is_locked_and_reported_locked(
    lab: Lab, graphical_session: str
) -> None:
    lab.machine.ssh(f"systemd-run --unit=lab-locker sh -c {shlex.quote(LOCKER)}")
    assert locked_hint(lab, graphical_session) == "no"
    result = lab.run("LOCK")
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["locked"] is True
    assert result["result"]["sessions"] == [
        {"session": graphical_session, "user": "kiosk", "type": "x11", "desktop": None, "locked": True}
    ]
    assert locked_hint(lab, graphical_session) == "yes"


def test_a_graphical_session_without_a_locker_is_reported_not_locked(lab: Lab, graphical_session: str) -> None:
    result = lab.run("LOCK")
    assert result["status"] == "FAILED", str(result)
    assert "did not lock" in result["failure_reason"]
    assert "no screen locker answered logind's Lock" in result["failure_reason"]
    assert locked_hint(lab, graphical_session) == "no"
