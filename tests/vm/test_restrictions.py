"""Restrictions on a real Debian: the modprobe blocklists of ALLOW_BLUETOOTH and ALLOW_CAMERA against the kernel's
real modules, the polkit rule of USE_ONLY_SAVED_WIFI_AP against the image's polkitd, and SET_DEVICE_LOCKDOWN_STATE's
/etc/nologin against a real ssh login of an ordinary user."""

import pytest

from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm


def loaded(lab: Lab, module: str) -> bool:
    return lab.machine.ssh(f"grep -q '^{module} ' /proc/modules", check=False).returncode == 0


@pytest.mark.parametrize(
    ("operation_type", "module", "conf"),
    [
        ("ALLOW_BLUETOOTH", "bluetooth", "/etc/modprobe.d/tether-bluetooth.conf"),
        ("ALLOW_CAMERA", "uvcvideo", "/etc/modprobe.d/tether-camera.conf"),
    ],
)
def test_a_blocked_driver_cannot_load_and_loads_again_once_allowed(
    lab: Lab, operation_type: str, module: str, conf: str
) -> None:
    lab.machine.ssh(f"modprobe {module}")
    result = lab.run(operation_type, {"allowed": False})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["effective_now"] is True
    assert module in result["result"]["unloaded"]
    assert not loaded(lab, module)
    refused = lab.machine.ssh(f"modprobe {module}", check=False)
    assert refused.returncode != 0
    assert not loaded(lab, module)

    allowed = lab.run(operation_type, {"allowed": True})
    assert allowed["status"] == "SUCCESSFUL", str(allowed)
    assert lab.machine.ssh(f"test -e {conf}", check=False).returncode == 1
    assert loaded(lab, module)
    lab.machine.ssh(f"modprobe -r {module}", check=False)


def test_saved_networks_only_is_enforced_by_polkit_for_ordinary_users(lab: Lab) -> None:
    lab.machine.ssh("id wifiuser >/dev/null 2>&1 || useradd --create-home wifiuser")
    check = (
        # setpriv execs sleep as wifiuser itself (runuser would fork, leaving a root process at $!).
        "setpriv --reuid=wifiuser --regid=wifiuser --init-groups sleep 30 & pid=$!; sleep 1;"
        " pkcheck --action-id org.freedesktop.NetworkManager.settings.modify.system --process $pid; echo exit=$?;"
        " kill $pid"
    )
    before = lab.machine.ssh(check, check=False).stdout
    result = lab.run("USE_ONLY_SAVED_WIFI_AP", {"enabled": True})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["in_force"] is True
    denied = lab.machine.ssh(check, check=False).stdout
    assert "exit=1" in denied, denied
    assert denied != before

    lifted = lab.run("USE_ONLY_SAVED_WIFI_AP", {"enabled": False})
    assert lifted["status"] == "SUCCESSFUL", str(lifted)
    assert lab.machine.ssh(check, check=False).stdout == before


def test_lockdown_refuses_an_ordinary_users_login_with_its_message_and_lifts_again(lab: Lab) -> None:
    lab.machine.ssh(
        "id kiosk >/dev/null 2>&1 || useradd --create-home kiosk;"
        " install -d -o kiosk -m 0700 /home/kiosk/.ssh;"
        " install -o kiosk -m 0600 /root/.ssh/authorized_keys /home/kiosk/.ssh/authorized_keys"
    )
    assert lab.machine.ssh("id -un", user="kiosk").stdout.strip() == "kiosk"
    result = lab.run("SET_DEVICE_LOCKDOWN_STATE", {"enabled": True, "message": "This kiosk is out of service."})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert lab.machine.output("cat /etc/nologin") == "This kiosk is out of service."
    # pam_nologin refuses the login before a session starts, so ssh shows no message: the refusal is the proof.
    assert lab.machine.ssh("id -un", user="kiosk", check=False).returncode == 255
    assert lab.machine.output("id -un") == "root"  # pam_nologin spares root

    lifted = lab.run("SET_DEVICE_LOCKDOWN_STATE", {"enabled": False})
    assert lifted["status"] == "SUCCESSFUL", str(lifted)
    assert lab.machine.ssh("id -un", user="kiosk").stdout.strip() == "kiosk"
