"""Networking on a real NetworkManager: two simulated radios (mac80211_hwsim), an access point of the test's own on
one (hostapd, with dnsmasq handing out addresses), and the VM's second NIC for wired settings, so the agent's own link
stays up. Only the rollback test touches the agent's link: that is what it proves survivable."""

from collections.abc import Iterator

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import Lab

pytestmark = pytest.mark.vm

SSID = "tether-lab"
PASSPHRASE = "correct horse battery"
HOSTAPD = f"""interface=wlan1
driver=nl80211
ssid={SSID}
hw_mode=g
channel=6
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase={PASSPHRASE}
"""


@pytest.fixture(scope="module")
def radios(lab: Lab) -> Iterator[Lab]:
    lab.machine.ssh("modprobe mac80211_hwsim radios=2")
    wait_for("NetworkManager to see wlan0", lambda: "wlan0" in lab.machine.output("nmcli -g DEVICE device"), 60, 1)
    lab.machine.ssh("nmcli device set wlan1 managed no && ip address add 192.168.77.1/24 dev wlan1")
    yield lab
    lab.machine.ssh("systemctl stop lab-hostapd lab-dnsmasq; modprobe -r mac80211_hwsim", check=False)


@pytest.fixture
def access_point(radios: Lab) -> Iterator[Lab]:
    """hostapd on wlan1 with a DHCP server, started just before the test (NetworkManager scans again for it)."""
    radios.machine.write("/run/lab/hostapd.conf", HOSTAPD)
    radios.machine.ssh(
        "systemd-run --unit=lab-hostapd hostapd /run/lab/hostapd.conf"
        " && systemd-run --unit=lab-dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0"
        " --interface=wlan1 --bind-interfaces --dhcp-range=192.168.77.10,192.168.77.50,1h"
    )
    wait_for(
        "the access point in wlan0's scan",
        lambda: SSID in radios.machine.output("nmcli -g SSID device wifi list --rescan yes ifname wlan0").split(),
        60,
        2,
    )
    yield radios
    radios.machine.ssh("systemctl stop lab-hostapd lab-dnsmasq", check=False)


def wifi_radio(lab: Lab) -> str:
    return lab.machine.output("nmcli radio wifi")


def test_the_wifi_radios_are_switched_off_and_on_for_real(radios: Lab) -> None:
    assert wifi_radio(radios) == "enabled"
    result = radios.run("SET_WIFI_STATE", {"wifi_state": "off"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["wifi_state"] == "off"
    assert wifi_radio(radios) == "disabled"
    assert "Soft blocked: yes" in radios.machine.output("rfkill list wlan")

    result = radios.run("SET_WIFI_STATE", {"wifi_state": "on"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert wifi_radio(radios) == "enabled"
    assert "Soft blocked: yes" not in radios.machine.output("rfkill list wlan")


def test_a_wifi_network_is_joined_and_removed_again(access_point: Lab) -> None:
    lab = access_point
    result = lab.run(
        "ADD_WIFI_AP",
        {"ssid": SSID, "security": "wpa-psk", "password": PASSPHRASE, "hidden": False, "autoconnect": True},
        timeout=180,
    )
    assert result["status"] == "SUCCESSFUL", str(result)
    assert (result["result"]["joined"], result["result"]["device"]) == (True, "wlan0")
    assert PASSPHRASE not in str(result)
    wait_for(
        "wlan0 on the lab's network",
        lambda: (
            lab.machine.output("nmcli -g GENERAL.STATE,GENERAL.CONNECTION device show wlan0").splitlines()
            == ["100 (connected)", SSID]
        ),
        60,
        1,
    )
    assert lab.machine.output("ip -4 -o address show wlan0").split()[3].startswith("192.168.77.")

    removed = lab.run("REMOVE_WIFI_AP", {"ssid": SSID})
    assert removed["status"] == "SUCCESSFUL", str(removed)
    assert SSID not in lab.machine.output("nmcli -g NAME connection show").splitlines()
    wait_for("wlan0 off the network", lambda: "192.168.77." not in lab.machine.output("ip -4 -o address show wlan0"))


def test_a_wrong_wifi_password_fails_with_network_managers_reason_and_keeps_no_profile(access_point: Lab) -> None:
    lab = access_point
    result = lab.run(
        "ADD_WIFI_AP",
        {"ssid": SSID, "security": "wpa-psk", "password": "not the passphrase", "hidden": False, "autoconnect": True},
        timeout=180,
    )
    assert result["status"] == "FAILED", str(result)
    assert "Secrets were required" in result["failure_reason"]
    assert "not the passphrase" not in str(result)
    assert SSID not in lab.machine.output("nmcli -g NAME connection show").splitlines()


def eth1_ipv4(lab: Lab) -> str:
    return lab.machine.output("ip -4 -o address show eth1").split()[3]


def test_a_static_address_on_the_second_nic_is_kept_and_dhcp_restored(lab: Lab) -> None:
    assert eth1_ipv4(lab) == "10.0.3.15/24"
    result = lab.run(
        "SET_STATIC_IP", {"interface": "eth1", "address": "10.0.3.50/24", "gateway": "10.0.3.2", "dns": ["10.0.3.3"]}
    )
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["broker_reachable"] is True
    assert eth1_ipv4(lab) == "10.0.3.50/24"
    uuid = lab.machine.output("nmcli -g GENERAL.CON-UUID device show eth1")
    assert lab.machine.output(f"nmcli -g ipv4.method,ipv4.dns connection show uuid {uuid}").splitlines() == [
        "manual",
        "10.0.3.3",
    ]

    result = lab.run("SET_ETHERNET_SETTINGS", {"interface": "eth1", "enabled": True, "dhcp": True})
    assert result["status"] == "SUCCESSFUL", str(result)
    wait_for("eth1 back on DHCP", lambda: eth1_ipv4(lab) == "10.0.3.15/24", 30, 1)


def test_an_address_that_cuts_the_agent_off_its_broker_is_rolled_back(lab: Lab) -> None:
    result = lab.run(
        "SET_STATIC_IP", {"interface": "eth0", "address": "192.0.2.10/24", "gateway": "192.0.2.1"}, timeout=240
    )
    assert result["status"] == "FAILED", str(result)
    assert result["failure_reason"].startswith("rolled back: the change cut the device off its broker")
    assert lab.machine.output("ip -4 -o address show eth0").split()[3] == "10.0.2.15/24"
    lab.wait_online()


@pytest.fixture
def bluetooth_adapter(lab: Lab) -> Iterator[Lab]:
    """A virtual Bluetooth controller (hci_vhci makes one for whoever holds /dev/vhci open), with its rfkill switch."""
    lab.machine.ssh("modprobe hci_vhci && systemd-run --unit=lab-vhci sh -c 'exec 3<>/dev/vhci; exec sleep infinity'")
    wait_for("the virtual adapter's rfkill switch", lambda: lab.machine.output("rfkill list bluetooth"), 30, 1)
    yield lab
    lab.machine.ssh("systemctl stop lab-vhci", check=False)


def test_bluetooth_is_blocked_and_unblocked_at_the_kernels_rfkill_switch(bluetooth_adapter: Lab) -> None:
    lab = bluetooth_adapter
    result = lab.run("SET_BLUETOOTH_STATE", {"bluetooth_state": "off"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert "Soft blocked: yes" in lab.machine.output("rfkill list bluetooth")

    result = lab.run("SET_BLUETOOTH_STATE", {"bluetooth_state": "on"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert "Soft blocked: yes" not in lab.machine.output("rfkill list bluetooth")


def test_an_apn_override_is_saved_as_a_mobile_profile_with_its_secret_kept_by_network_manager(lab: Lab) -> None:
    arguments = {"name": "Fleet LTE", "apn": "iot.example-carrier.net", "username": "fleet", "password": "s3cret-apn"}
    result = lab.run("ADD_OVERRIDE_APN", {**arguments, "auth": "chap"})
    assert result["status"] == "SUCCESSFUL", str(result)
    assert "s3cret-apn" not in str(result)
    shown = lab.machine.output(
        "nmcli -s -g connection.type,gsm.apn,gsm.username,gsm.password connection show 'Fleet LTE'"
    )
    assert shown.splitlines() == ["gsm", "iot.example-carrier.net", "fleet", "s3cret-apn"]
    lab.machine.ssh("nmcli connection delete 'Fleet LTE'")
