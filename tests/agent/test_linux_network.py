"""The network handlers on the Linux platform, against recording fakes of nmcli, busctl and rfkill."""

import asyncio
import contextlib
import json
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.errors import HandlerError, ToolFailed, ToolNotFound, ToolTimeout
from agent.handlers import REGISTRY
from agent.handlers.base import Handler, HandlerContext
from agent.handlers.network import (
    AddWifiHandler,
    ApnOverrideHandler,
    BluetoothHandler,
    EthernetHandler,
    RemoveWifiHandler,
    SavedWifiOnlyHandler,
    StaticIpHandler,
)
from agent.journal import Journal
from agent.platforms import LinuxPlatform
from agent.platforms.contract import BluetoothRadio, MobileApns, WifiJoinPolicy, WifiNetworks, WiredNetwork
from agent.reachability import BrokerReachability, ReachabilityCheck, no_broker
from agent.runner import Runner
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import StatusReport
from shared.operations import DeviceStatus, OperationType
from tests.agent.contexts import context_for as shared_context
from tests.agent.test_runner import until
from tests.fakes import FakeTools

PASSWORD = "hunter2-correct-horse"
UUID = "7d1b2a9e-5c1f-4e8a-9b62-0f3e1d2c4b5a"

sh = shlex.split
"""Expected argv are written as shell words, `''` for an empty argument."""

SHOW_WIFI = sh("nmcli --escape no -g connection.type connection show id home")
SHOW_ETH0 = sh("nmcli --escape no -g GENERAL.CON-UUID device show eth0")
UP_ETH0 = sh(f"nmcli connection up uuid {UUID} ifname eth0")
RFKILL_LIST = sh("rfkill --noheadings --output ID list bluetooth")

NM = "org.freedesktop.NetworkManager /org/freedesktop/NetworkManager org.freedesktop.NetworkManager"
DEVICE = "/org/freedesktop/NetworkManager/Devices/2"
CHECKPOINT = "/org/freedesktop/NetworkManager/Checkpoint/7"
ROLLBACK_AFTER_S = 55
"""Five nmcli calls of the tests' 5 s tool timeout, and the broker check's 30 s."""
CREATE = sh(f"busctl call {NM} CheckpointCreate aouu 1 {DEVICE} {ROLLBACK_AFTER_S} 2")
DESTROY = sh(f"busctl call {NM} CheckpointDestroy o {CHECKPOINT}")
ROLLBACK = sh(f"busctl call {NM} CheckpointRollback o {CHECKPOINT}")
BUSCTL = f"""case "$*" in
  *" GetDeviceByIpIface s "*) echo 'o "{DEVICE}"' ;;
  *" CheckpointCreate "*) echo 'o "{CHECKPOINT}"' ;;
  *" CheckpointRollback "*) echo 'a{{su}} 1 "{DEVICE}" 0' ;;
esac"""
"""A fake busctl answering as NetworkManager does over D-Bus."""


def checkpointed(interface: str, *calls: list[str]) -> list[list[str]]:
    """`calls` made under a checkpoint of `interface` that is then kept."""
    return [sh(f"busctl call {NM} GetDeviceByIpIface s {interface}"), CREATE, *calls, DESTROY]


# Shell snippets for the fake nmcli, answering the queries the platform makes (builtins only).
UNSAVED = (
    """case "$*" in *"connection show id"*) echo "Error: home - no such connection profile." >&2; exit 10;; esac"""
)
SAVED_WIFI = """case "$*" in *"connection show id"*) printf '802-11-wireless\\n';; esac"""
SAVED_WIRED = """case "$*" in *"connection show id"*) printf '802-3-ethernet\\n';; esac"""
ACTIVE = f"""case "$*" in *"device show"*) printf '{UUID}\\n';; esac"""


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    return FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerReachability]:
    """A real listener on 127.0.0.1 standing in for the broker, and the agent's real check of it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield BrokerReachability((("127.0.0.1", listener.getsockname()[1]),), within_s=2, retry_s=0.1)


@pytest.fixture
def lost_broker() -> BrokerReachability:
    """The check of a broker that no longer answers: nothing listens on its port any more."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    return BrokerReachability((("127.0.0.1", port),), within_s=0.3, retry_s=0.1)


def context_for(
    platform: Any, tmp_path: Path, operation_type: OperationType, reach_broker: ReachabilityCheck = no_broker
) -> HandlerContext:
    return shared_context(platform, tmp_path, operation_type, reach_broker=reach_broker)


def execute(
    handler: Handler,
    arguments: dict[str, Any],
    tmp_path: Path,
    tool_timeout: float = 5,
    reach_broker: ReachabilityCheck = no_broker,
) -> dict[str, Any]:
    """Validate as the runner does, then run on a Linux platform whose configuration lives under tmp_path/etc."""
    (operation_type,) = handler.operation_types
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=tool_timeout, etc_dir=tmp_path / "etc")
    parsed = validate_arguments(operation_type, arguments)
    return asyncio.run(handler.run(parsed, context_for(platform, tmp_path, operation_type, reach_broker)))


@dataclass(frozen=True)
class Case:
    handler: Handler
    arguments: dict[str, Any]
    calls: list[list[str]]
    result: dict[str, Any]
    nmcli: str = ""
    rfkill: str = ""

    def install(self, tools: FakeTools) -> None:
        tools.add("nmcli", script=self.nmcli)
        tools.add("rfkill", stdout=self.rfkill)
        tools.add("busctl", script=BUSCTL)


WPA = {"ssid": "home", "password": PASSWORD}
NO_FREE_RADIO = {"joined": False, "not_joined": "no Wi-Fi device is free (each is on a network, or off)"}
WPA_RESULT = {"ssid": "home", "security": "wpa-psk", "hidden": False, "autoconnect": True, **NO_FREE_RADIO}
DEVICES = sh("nmcli -g DEVICE,TYPE,STATE device")
JOIN_WLAN0 = sh("nmcli --wait 45 connection up id home ifname wlan0")
ADD_HOME = "nmcli connection add type wifi con-name home 802-11-wireless.ssid home"
ADD_WPA = sh(
    f"{ADD_HOME} 802-11-wireless.hidden no connection.autoconnect yes"
    f" 802-11-wireless-security.key-mgmt wpa-psk 802-11-wireless-security.psk {PASSWORD}"
)
DELETE_HOME = sh("nmcli connection delete id home")
SHOW_FLEET = sh("nmcli --escape no -g connection.type connection show id 'Fleet LTE'")
ADD_FLEET = "nmcli connection add type gsm ifname '*' con-name 'Fleet LTE'"
MODIFY = f"nmcli connection modify uuid {UUID}"
DHCP = "ipv4.addresses '' ipv4.gateway '' ipv4.method auto ipv4.dns '' ipv4.ignore-auto-dns no"
KEPT = {"broker_reachable": True}
ETH0_DEFAULTS = {"interface": "eth0", "enabled": True, "dhcp": True, "address": None, "gateway": None, "dns": []}
OWN_DNS = ["192.0.2.53", "2001:db8::53", "198.51.100.53"]
STATIC_V4 = {"interface": "enp1s0", "dhcp": False, "address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": []}
STATIC_V6 = {"address": "2001:db8::10/64", "gateway": "2001:db8::1", "dns": ["2001:db8::53"]}

CASES = {
    "add-new-wpa": Case(AddWifiHandler(), WPA, [SHOW_WIFI, DEVICES, ADD_WPA], WPA_RESULT, nmcli=UNSAVED),
    "add-replaces-saved-sae-hidden": Case(
        AddWifiHandler(),
        {"ssid": "home", "security": "sae", "password": PASSWORD, "hidden": True, "autoconnect": False},
        [
            SHOW_WIFI,
            DELETE_HOME,
            sh(
                f"{ADD_HOME} 802-11-wireless.hidden yes connection.autoconnect no"
                f" 802-11-wireless-security.key-mgmt sae 802-11-wireless-security.psk {PASSWORD}"
            ),
        ],
        {
            "ssid": "home",
            "security": "sae",
            "hidden": True,
            "autoconnect": False,
            "joined": False,
            "not_joined": "autoconnect is off: saved only",
        },
        nmcli=SAVED_WIFI,
    ),
    "add-open": Case(
        AddWifiHandler(),
        {"ssid": "home", "security": "open"},
        [SHOW_WIFI, DEVICES, sh(f"{ADD_HOME} 802-11-wireless.hidden no connection.autoconnect yes")],
        {"ssid": "home", "security": "open", "hidden": False, "autoconnect": True, **NO_FREE_RADIO},
        nmcli=UNSAVED,
    ),
    "remove": Case(
        RemoveWifiHandler(),
        {"ssid": "home"},
        [SHOW_WIFI, DELETE_HOME],
        {"ssid": "home", "removed": True},
        nmcli=SAVED_WIFI,
    ),
    "apn-new": Case(
        ApnOverrideHandler(),
        {"name": "Fleet LTE", "apn": "iot.example-carrier.net"},
        [SHOW_FLEET, sh(f"{ADD_FLEET} gsm.apn iot.example-carrier.net ipv4.method auto")],
        {"name": "Fleet LTE", "apn": "iot.example-carrier.net", "username": None, "auth": None},
        nmcli=UNSAVED,
    ),
    "apn-replaces-saved-with-login": Case(
        ApnOverrideHandler(),
        {"name": "Fleet LTE", "apn": "iot.example", "username": "fleet", "password": PASSWORD, "auth": "chap"},
        [
            SHOW_FLEET,
            sh("nmcli connection delete id 'Fleet LTE'"),
            sh(
                f"{ADD_FLEET} gsm.apn iot.example ppp.refuse-pap yes ppp.refuse-mschap yes ppp.refuse-mschapv2 yes"
                f" ppp.refuse-eap yes gsm.username fleet ipv4.method auto gsm.password {PASSWORD}"
            ),
        ],
        {"name": "Fleet LTE", "apn": "iot.example", "username": "fleet", "auth": "chap"},
        nmcli="""case "$*" in *"connection show id"*) printf 'gsm\\n';; esac""",
    ),
    "bluetooth-on": Case(
        BluetoothHandler(),
        {"bluetooth_state": "on"},
        [RFKILL_LIST, sh("rfkill unblock bluetooth")],
        {"bluetooth_state": "on"},
        rfkill="0\n",
    ),
    "bluetooth-off": Case(
        BluetoothHandler(),
        {"bluetooth_state": False},
        [RFKILL_LIST, sh("rfkill block bluetooth")],
        {"bluetooth_state": "off"},
        rfkill="0\n3\n",
    ),
    "ethernet-dhcp": Case(
        EthernetHandler(),
        {},
        checkpointed("eth0", SHOW_ETH0, sh(f"{MODIFY} {DHCP}"), UP_ETH0),
        {**ETH0_DEFAULTS, **KEPT},
        nmcli=ACTIVE,
    ),
    "ethernet-dhcp-own-dns": Case(
        EthernetHandler(),
        {"dns": OWN_DNS},
        checkpointed(
            "eth0",
            SHOW_ETH0,
            sh(
                f"{MODIFY} ipv4.addresses '' ipv4.gateway '' ipv4.method auto"
                " ipv4.dns 192.0.2.53,198.51.100.53 ipv4.ignore-auto-dns yes"
                " ipv6.dns 2001:db8::53 ipv6.ignore-auto-dns yes"
            ),
            UP_ETH0,
        ),
        {**ETH0_DEFAULTS, "dns": OWN_DNS, **KEPT},
        nmcli=ACTIVE,
    ),
    "ethernet-static": Case(
        EthernetHandler(),
        {**STATIC_V4, "dhcp": "false"},
        checkpointed(
            "enp1s0",
            sh("nmcli --escape no -g GENERAL.CON-UUID device show enp1s0"),
            sh(
                f"{MODIFY} ipv4.addresses 192.0.2.10/24 ipv4.gateway 192.0.2.1 ipv4.method manual"
                " ipv4.dns '' ipv4.ignore-auto-dns no"
            ),
            sh(f"nmcli connection up uuid {UUID} ifname enp1s0"),
        ),
        {**STATIC_V4, "enabled": True, **KEPT},
        nmcli=ACTIVE,
    ),
    "ethernet-disabled": Case(
        EthernetHandler(),
        {"enabled": False},
        checkpointed("eth0", sh("nmcli device disconnect eth0")),
        {**ETH0_DEFAULTS, "enabled": False, **KEPT},
    ),
    "static-ipv6": Case(
        StaticIpHandler(),
        STATIC_V6,
        checkpointed(
            "eth0",
            SHOW_ETH0,
            sh(
                f"{MODIFY} ipv6.addresses 2001:db8::10/64 ipv6.gateway 2001:db8::1 ipv6.method manual"
                " ipv6.dns 2001:db8::53 ipv6.ignore-auto-dns yes"
            ),
            UP_ETH0,
        ),
        {"interface": "eth0", **STATIC_V6, **KEPT},
        nmcli=ACTIVE,
    ),
}
"""What each handler runs and returns; the first of each handler also drives its failure paths below."""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_handler_runs_the_tools_and_returns_what_it_applied(
    case: Case, fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    case.install(fake_tools)

    result = execute(case.handler, case.arguments, tmp_path, reach_broker=broker)

    assert result == case.result
    assert fake_tools.calls() == case.calls
    assert PASSWORD not in repr(result)


FAILING = {
    name: CASES[name] for name in ("add-new-wpa", "apn-new", "remove", "bluetooth-on", "ethernet-dhcp", "static-ipv6")
}


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_missing_tool(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tool = case.calls[0][0]

    with pytest.raises(ToolNotFound, match=rf"^{tool} not found on PATH$"):
        execute(case.handler, case.arguments, tmp_path)


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_failing_tool(case: Case, fake_tools: FakeTools, tmp_path: Path) -> None:
    tool = case.calls[0][0]
    fake_tools.add(tool, exit_code=8, stderr="warming up\nError: NetworkManager is not running.\n")

    with pytest.raises(ToolFailed, match=rf"^{tool} exited 8: Error: NetworkManager is not running\.$"):
        execute(case.handler, case.arguments, tmp_path)
    assert len(fake_tools.calls()) == 1


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_hanging_tool(case: Case, fake_tools: FakeTools, tmp_path: Path) -> None:
    tool = case.calls[0][0]
    fake_tools.add(tool, sleep=10)

    with pytest.raises(ToolTimeout, match=rf"^{tool} timed out after 0.2s$"):
        execute(case.handler, case.arguments, tmp_path, tool_timeout=0.2)


@pytest.mark.parametrize(
    ("operation_type", "arguments", "field"),
    [
        (OperationType.ADD_WIFI_AP, {"password": PASSWORD}, "arguments.ssid"),
        (OperationType.ADD_WIFI_AP, {"ssid": "", "password": PASSWORD}, "arguments.ssid"),
        (OperationType.ADD_WIFI_AP, {"ssid": "é" * 17, "password": PASSWORD}, "arguments.ssid"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home"}, "arguments"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home", "security": "open", "password": PASSWORD}, "arguments"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home", "security": "wep", "password": PASSWORD}, "arguments.security"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home", "password": "short"}, "arguments.password"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home", "password": PASSWORD + "\n"}, "arguments.password"),
        (OperationType.ADD_WIFI_AP, {"ssid": "home", "password": PASSWORD, "psk": PASSWORD}, "arguments.psk"),
        (OperationType.REMOVE_WIFI_AP, {}, "arguments.ssid"),
        (OperationType.REMOVE_WIFI_AP, {"ssid": "x" * 33}, "arguments.ssid"),
        (OperationType.USE_ONLY_SAVED_WIFI_AP, {"enabled": "maybe"}, "arguments.enabled"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet"}, "arguments.apn"),
        (OperationType.ADD_OVERRIDE_APN, {"apn": "iot.example"}, "arguments.name"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet\nid", "apn": "iot.example"}, "arguments.name"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "--help", "apn": "iot.example"}, "arguments.name"),
        (OperationType.ADD_OVERRIDE_APN, {"name": " Fleet", "apn": "iot.example"}, "arguments.name"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "x" * 65, "apn": "iot.example"}, "arguments.name"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "-iot.example"}, "arguments.apn"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot example"}, "arguments.apn"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot.example\n"}, "arguments.apn"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "a" * 101}, "arguments.apn"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot", "username": "-o"}, "arguments.username"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot", "username": ""}, "arguments.username"),
        (
            OperationType.ADD_OVERRIDE_APN,
            {"name": "Fleet", "apn": "iot", "password": PASSWORD + "\n"},
            "arguments.password",
        ),
        (
            OperationType.ADD_OVERRIDE_APN,
            {"name": "Fleet", "apn": "iot", "password": "-" + PASSWORD},
            "arguments.password",
        ),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot", "auth": "mschap"}, "arguments.auth"),
        (OperationType.ADD_OVERRIDE_APN, {"name": "Fleet", "apn": "iot", "mcc": "262"}, "arguments.mcc"),
        (OperationType.SET_BLUETOOTH_STATE, {}, "arguments.bluetooth_state"),
        (OperationType.SET_BLUETOOTH_STATE, {"bluetooth_state": 1}, "arguments.bluetooth_state"),
        (OperationType.SET_ETHERNET_SETTINGS, {"interface": "-eth0"}, "arguments.interface"),
        (OperationType.SET_ETHERNET_SETTINGS, {"interface": "eth0 up"}, "arguments.interface"),
        (OperationType.SET_ETHERNET_SETTINGS, {"dhcp": False}, "arguments"),
        (OperationType.SET_ETHERNET_SETTINGS, {"address": "192.0.2.10/24"}, "arguments"),
        (OperationType.SET_ETHERNET_SETTINGS, {"gateway": "192.0.2.1"}, "arguments"),
        (OperationType.SET_ETHERNET_SETTINGS, {"enabled": False, "dns": ["192.0.2.53"]}, "arguments"),
        (OperationType.SET_ETHERNET_SETTINGS, {"dns": ["nope"]}, "arguments.dns.0"),
        (OperationType.SET_ETHERNET_SETTINGS, {"dns": ["192.0.2.53"] * 9}, "arguments.dns"),
        (OperationType.SET_STATIC_IP, {}, "arguments.address"),
        (OperationType.SET_STATIC_IP, {"address": "192.0.2.300/24"}, "arguments.address"),
        (OperationType.SET_STATIC_IP, {"address": "192.0.2.10"}, "arguments.address"),
        (OperationType.SET_STATIC_IP, {"address": "2001:db8::10/64", "gateway": "192.0.2.1"}, "arguments"),
    ],
)
def test_bad_arguments_name_the_field(operation_type: OperationType, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(operation_type, arguments)

    assert caught.value.field == field
    assert PASSWORD not in str(caught.value)


def test_static_ip_problems_read_plainly() -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.SET_STATIC_IP, {"address": "2001:db8::10/64", "gateway": "192.0.2.1"})

    assert str(caught.value) == (
        "invalid arguments: arguments: Value error, gateway 192.0.2.1 is not an IPv6 address like 2001:db8::10/64"
    )


def test_wifi_password_stays_out_of_the_model_repr() -> None:
    network = validate_arguments(OperationType.ADD_WIFI_AP, WPA)

    assert PASSWORD not in repr(network)


# --- Wi-Fi specifics ------------------------------------------------------------------------------------------------


def test_a_password_echoed_by_nmcli_is_scrubbed(fake_tools: FakeTools, tmp_path: Path) -> None:
    echo = f"""case "$*" in *"connection add"*) echo "Error: 802-11-wireless-security.psk: '{PASSWORD}' rejected" >&2
    exit 2;; esac"""
    fake_tools.add("nmcli", script=UNSAVED + "\n" + echo)

    with pytest.raises(ToolFailed) as caught:
        execute(AddWifiHandler(), WPA, tmp_path)

    assert str(caught.value) == "nmcli exited 2: Error: 802-11-wireless-security.psk: '[password]' rejected"
    assert caught.value.result is not None
    assert caught.value.result["exit_code"] == 2
    assert PASSWORD not in repr(caught.value.result)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_hanging_nmcli_add_leaks_no_password(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add(
        "nmcli", stdout=f"{PASSWORD}\n", script=f'{UNSAVED}\ncase "$*" in *"connection add"*) sleep 10;; esac'
    )

    with pytest.raises(ToolTimeout) as caught:
        execute(AddWifiHandler(), WPA, tmp_path, tool_timeout=0.2)

    assert str(caught.value) == "nmcli timed out after 0.2s"
    assert PASSWORD not in repr(caught.value.result)


LISTED = r"eth0:ethernet:connected\nwlan1:wifi:unavailable\nwlan0:wifi:disconnected\n"
RADIOS = f"""case "$*" in *" device") printf '{LISTED}';; esac"""
"""A fake nmcli's device listing: wlan1's radio is off, wlan0 is on no network."""


def joining(stderr: str = "") -> str:
    """A fake nmcli that saves, lists RADIOS, and joins (or fails with `stderr`, as nmcli does, exit 4)."""
    join = f"""case "$*" in *"connection up"*) printf '%s' '{stderr}' >&2; exit 4;; esac""" if stderr else ""
    return "\n".join([UNSAVED, RADIOS, join])


def test_a_network_in_range_is_joined_on_the_free_wifi_device(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("nmcli", script=joining())

    result = execute(AddWifiHandler(), WPA, tmp_path)

    saved = {"ssid": "home", "security": "wpa-psk", "hidden": False, "autoconnect": True}
    assert result == {**saved, "joined": True, "device": "wlan0"}
    assert fake_tools.calls() == [SHOW_WIFI, DEVICES, ADD_WPA, JOIN_WLAN0]


def test_a_network_out_of_range_stays_saved_for_later(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add(
        "nmcli",
        script=joining(
            "Error: Connection activation failed: The Wi-Fi network could not be found\n"
            "Hint: use journalctl -xe NM_CONNECTION=x + NM_DEVICE=wlan0 to get more details.\n"
        ),
    )

    result = execute(AddWifiHandler(), WPA, tmp_path)

    assert result == {
        **WPA_RESULT,
        "joined": False,
        "not_joined": "wlan0 found no such network in range; saved for when it is",
    }
    assert fake_tools.calls() == [SHOW_WIFI, DEVICES, ADD_WPA, JOIN_WLAN0]


def test_a_network_that_refuses_the_password_fails_with_nms_reason_and_is_not_kept(
    fake_tools: FakeTools, tmp_path: Path
) -> None:
    fake_tools.add(
        "nmcli",
        script=joining(
            f"Passwords or encryption keys are required to access the wireless network home ({PASSWORD}).\n"
            "Error: Connection activation failed: Secrets were required, but not provided\n"
            "Hint: use journalctl -xe NM_CONNECTION=x + NM_DEVICE=wlan0 to get more details.\n"
        ),
    )

    with pytest.raises(HandlerError) as caught:
        execute(AddWifiHandler(), WPA, tmp_path)

    assert str(caught.value) == (
        "wlan0 could not join 'home', so it was not saved: Secrets were required, but not provided"
    )
    assert PASSWORD not in repr(caught.value.result)
    assert fake_tools.calls() == [SHOW_WIFI, DEVICES, ADD_WPA, JOIN_WLAN0, DELETE_HOME]


def test_a_device_already_on_a_network_is_not_moved_off_it(fake_tools: FakeTools, tmp_path: Path) -> None:
    busy = """case "$*" in *" device") printf 'wlan0:wifi:connected\\n';; esac"""
    fake_tools.add("nmcli", script=UNSAVED + "\n" + busy)

    assert execute(AddWifiHandler(), WPA, tmp_path) == WPA_RESULT
    assert fake_tools.calls() == [SHOW_WIFI, DEVICES, ADD_WPA]


def test_add_refuses_to_replace_a_wired_profile_of_the_same_name(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("nmcli", script=SAVED_WIRED)

    with pytest.raises(HandlerError) as caught:
        execute(AddWifiHandler(), WPA, tmp_path)

    assert str(caught.value) == "a saved connection named 'home' is not a Wi-Fi network"
    assert fake_tools.calls() == [SHOW_WIFI]


@pytest.mark.parametrize("nmcli", [UNSAVED, SAVED_WIRED])
def test_removing_a_network_that_is_not_saved_fails(nmcli: str, fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("nmcli", script=nmcli)

    with pytest.raises(HandlerError, match=r"^no saved Wi-Fi network named 'home'$"):
        execute(RemoveWifiHandler(), {"ssid": "home"}, tmp_path)
    assert fake_tools.calls() == [SHOW_WIFI]


SAVED_ONLY_RULE = """\
// Written by tetherd for USE_ONLY_SAVED_WIFI_AP; USE_ONLY_SAVED_WIFI_AP with enabled false removes it.
// Only root may add or change NetworkManager profiles, so users join saved networks and no other.
polkit.addRule(function(action, subject) {
    var denied = [
        "org.freedesktop.NetworkManager.settings.modify.system",
        "org.freedesktop.NetworkManager.settings.modify.own",
        "org.freedesktop.NetworkManager.wifi.share.protected",
        "org.freedesktop.NetworkManager.wifi.share.open"
    ];
    if (denied.indexOf(action.id) >= 0 && subject.user != "root") {
        return polkit.Result.NO;
    }
});
"""


def rules_dir(tmp_path: Path) -> Path:
    """polkit's JavaScript rules directory, as polkit 0.106 and later install it."""
    directory = tmp_path / "etc" / "polkit-1" / "rules.d"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_use_only_saved_wifi_writes_a_polkit_rule(fake_tools: FakeTools, tmp_path: Path) -> None:
    rule = rules_dir(tmp_path) / "49-tether-saved-wifi-only.rules"

    result = execute(SavedWifiOnlyHandler(), {}, tmp_path)

    assert result == {"enabled": True, "rule": str(rule), "in_force": True}
    assert rule.read_text() == SAVED_ONLY_RULE
    assert rule.stat().st_mode & 0o777 == 0o644  # polkitd reads it as its own user
    assert [path.name for path in rule.parent.iterdir()] == [rule.name]  # no temporary file left beside it
    assert fake_tools.calls() == []


POLKIT_RUN = """
const rules = [];
const polkit = {Result: {NO: "no", YES: "yes"}, addRule: (rule) => rules.push(rule)};
new Function("polkit", require("fs").readFileSync(process.argv[1], "utf8"))(polkit);
const asked = JSON.parse(process.argv[2]);
console.log(JSON.stringify(asked.map(([id, user]) => rules[0]({id}, {user}) ?? null)));
"""
"""Runs a rules file against a stand-in `polkit` object: what polkitd's JavaScript engine would answer."""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the rule's JavaScript")
def test_the_polkit_rule_denies_saving_networks_to_everyone_but_root(tmp_path: Path) -> None:
    rules_dir(tmp_path)
    execute(SavedWifiOnlyHandler(), {}, tmp_path)
    rule = tmp_path / "etc" / "polkit-1" / "rules.d" / "49-tether-saved-wifi-only.rules"
    nm = "org.freedesktop.NetworkManager"
    asked = [
        [f"{nm}.settings.modify.system", "kiosk"],
        [f"{nm}.settings.modify.own", "kiosk"],
        [f"{nm}.wifi.share.open", "kiosk"],
        [f"{nm}.settings.modify.system", "root"],
        [f"{nm}.network-control", "kiosk"],  # joining a saved network stays allowed
        ["org.freedesktop.login1.reboot", "kiosk"],
    ]

    answered = subprocess.run(
        ["node", "-e", POLKIT_RUN, str(rule), json.dumps(asked)], capture_output=True, text=True, check=True
    )

    assert json.loads(answered.stdout) == ["no", "no", "no", None, None, None]


def test_use_only_saved_wifi_off_removes_the_rule(fake_tools: FakeTools, tmp_path: Path) -> None:
    rules_dir(tmp_path)
    execute(SavedWifiOnlyHandler(), {"enabled": "on"}, tmp_path)
    rule = tmp_path / "etc" / "polkit-1" / "rules.d" / "49-tether-saved-wifi-only.rules"

    assert execute(SavedWifiOnlyHandler(), {"enabled": "off"}, tmp_path) == {
        "enabled": False,
        "rule": str(rule),
        "in_force": False,
    }
    assert not rule.exists()
    assert execute(SavedWifiOnlyHandler(), {"enabled": False}, tmp_path)["in_force"] is False  # already off


def test_use_only_saved_wifi_replaces_an_edited_rule(tmp_path: Path) -> None:
    rule = tmp_path / "etc" / "polkit-1" / "rules.d" / "49-tether-saved-wifi-only.rules"
    rule.parent.mkdir(parents=True)
    rule.write_text("// edited by hand\n")

    assert execute(SavedWifiOnlyHandler(), {"enabled": True}, tmp_path)["in_force"] is True
    assert rule.read_text() == SAVED_ONLY_RULE


def test_use_only_saved_wifi_that_cannot_write_fails(tmp_path: Path) -> None:
    (rules_dir(tmp_path) / "49-tether-saved-wifi-only.rules").mkdir()

    with pytest.raises(HandlerError, match=r"^cannot write .*49-tether-saved-wifi-only\.rules: Is a directory$"):
        execute(SavedWifiOnlyHandler(), {}, tmp_path)


def test_use_only_saved_wifi_without_javascript_rules_fails_and_writes_nothing(tmp_path: Path) -> None:
    # polkit 0.105 (Debian 11, Ubuntu 22.04) reads .pkla files only: a JavaScript rule written there would leave
    # every user free to save networks while the command reported the policy in force.
    (tmp_path / "etc" / "polkit-1" / "localauthority").mkdir(parents=True)

    with pytest.raises(HandlerError, match=r"^polkit on this device reads no JavaScript rules: .*rules\.d does not"):
        execute(SavedWifiOnlyHandler(), {}, tmp_path)

    assert not (tmp_path / "etc" / "polkit-1" / "rules.d").exists()
    assert execute(SavedWifiOnlyHandler(), {"enabled": False}, tmp_path)["in_force"] is False  # off needs no polkit


def test_linux_has_every_network_capability(tmp_path: Path) -> None:
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id")

    for needs in (WifiNetworks, WifiJoinPolicy, MobileApns, BluetoothRadio, WiredNetwork):
        assert isinstance(platform, needs)


# --- mobile data -------------------------------------------------------------------------------------------------


def test_an_apn_password_echoed_by_nmcli_is_scrubbed(fake_tools: FakeTools, tmp_path: Path) -> None:
    echo = f"""case "$*" in *"connection add"*) echo "Error: gsm.password: '{PASSWORD}' rejected" >&2; exit 2;; esac"""
    fake_tools.add("nmcli", script=UNSAVED + "\n" + echo)

    with pytest.raises(ToolFailed) as caught:
        execute(ApnOverrideHandler(), {"name": "Fleet", "apn": "iot", "password": PASSWORD}, tmp_path)

    assert str(caught.value) == "nmcli exited 2: Error: gsm.password: '[password]' rejected"
    assert PASSWORD not in repr(caught.value.result)
    assert caught.value.__cause__ is None


def test_an_apn_does_not_replace_a_wifi_profile_of_the_same_name(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("nmcli", script=SAVED_WIFI)

    with pytest.raises(HandlerError, match=r"^a saved connection named 'home' is not a mobile-data profile$"):
        execute(ApnOverrideHandler(), {"name": "home", "apn": "iot"}, tmp_path)
    assert fake_tools.calls() == [SHOW_WIFI]


def test_apn_password_stays_out_of_the_model_repr() -> None:
    override = validate_arguments(OperationType.ADD_OVERRIDE_APN, {"name": "F", "apn": "iot", "password": PASSWORD})

    assert PASSWORD not in repr(override)


# --- Bluetooth and Ethernet specifics -------------------------------------------------------------------------------


def test_bluetooth_without_an_adapter_fails(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("rfkill")

    with pytest.raises(HandlerError, match=r"^no Bluetooth adapter: rfkill lists no bluetooth device$"):
        execute(BluetoothHandler(), {"bluetooth_state": True}, tmp_path)
    assert fake_tools.calls() == [RFKILL_LIST]


def test_ethernet_on_a_disconnected_device_connects_it_first(
    fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    marker = tmp_path / "connected"
    fake_tools.add(
        "nmcli",
        script=f"""case "$*" in
        *"device connect"*) : > '{marker}';;
        *"device show"*) if [ -e '{marker}' ]; then printf '{UUID}\\n'; fi;;
        esac""",
    )

    fake_tools.add("busctl", script=BUSCTL)

    assert execute(EthernetHandler(), {}, tmp_path, reach_broker=broker) == {**ETH0_DEFAULTS, **KEPT}
    assert fake_tools.calls() == checkpointed(
        "eth0", SHOW_ETH0, sh("nmcli device connect eth0"), SHOW_ETH0, sh(f"{MODIFY} {DHCP}"), UP_ETH0
    )


def test_ethernet_without_any_profile_fails_and_rolls_back(
    fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    fake_tools.add("busctl", script=BUSCTL)

    with pytest.raises(HandlerError, match=r"^eth0 has no NetworkManager connection to configure$"):
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=broker)
    assert fake_tools.calls() == [
        *checkpointed("eth0", SHOW_ETH0, sh("nmcli device connect eth0"), SHOW_ETH0)[:-1],
        ROLLBACK,
    ]


def test_ethernet_on_an_unknown_device_names_it(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("busctl", exit_code=1, stderr="Call failed: No device found for the requested iface.\n")

    with pytest.raises(ToolFailed, match=r"^busctl exited 1: Call failed: No device found for the requested iface\.$"):
        execute(EthernetHandler(), {"interface": "eth9"}, tmp_path)
    assert fake_tools.calls() == [sh(f"busctl call {NM} GetDeviceByIpIface s eth9")]


# --- rolling back a wired change that cuts the device off its broker ------------------------------------------------

STATIC_V4_ARGV = [
    SHOW_ETH0,
    sh(f"{MODIFY} ipv4.addresses 192.0.2.10/24 ipv4.gateway '' ipv4.method manual ipv4.dns '' ipv4.ignore-auto-dns no"),
    UP_ETH0,
]


def test_a_change_that_cuts_the_broker_off_is_rolled_back(
    fake_tools: FakeTools, tmp_path: Path, lost_broker: BrokerReachability
) -> None:
    fake_tools.add("nmcli", script=ACTIVE)
    fake_tools.add("busctl", script=BUSCTL)

    with pytest.raises(HandlerError, match=r"^rolled back: the change cut the device off its broker$"):
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=lost_broker)
    assert fake_tools.calls() == [*checkpointed("eth0", *STATIC_V4_ARGV)[:-1], ROLLBACK]


def test_disconnecting_the_broker_s_own_link_is_rolled_back_through_the_runner(
    fake_tools: FakeTools, tmp_path: Path, lost_broker: BrokerReachability
) -> None:
    """The runner turns the rollback into a FAILED status with its reason."""
    fake_tools.add("busctl", script=BUSCTL)
    (tmp_path / "boot_id").write_text("boot-1\n")
    published: list[StatusReport] = []

    async def publish(report: StatusReport) -> bool:
        published.append(report)
        return True

    async def go() -> None:
        runner = Runner(
            device_id="dev-1",
            platform=LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5),
            registry=REGISTRY,
            journal=journal,
            publish=publish,
            work_root=tmp_path / "work",
            reach_broker=lost_broker,
        )
        worker = asyncio.create_task(runner.run())
        command = context_for(None, tmp_path, OperationType.SET_ETHERNET_SETTINGS).command
        await runner.accept(command.model_copy(update={"arguments": {"enabled": False}}))
        await until(lambda: bool(published) and published[-1].status.is_terminal)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    journal = Journal(tmp_path / "journal.db")
    try:
        asyncio.run(go())
    finally:
        journal.close()
    assert (published[-1].status, published[-1].failure_reason) == (
        DeviceStatus.FAILED,
        "rolled back: the change cut the device off its broker",
    )
    assert fake_tools.calls() == [*checkpointed("eth0", sh("nmcli device disconnect eth0"))[:-1], ROLLBACK]


def test_an_agent_without_a_broker_check_keeps_no_change(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("nmcli", script=ACTIVE)
    fake_tools.add("busctl", script=BUSCTL)

    with pytest.raises(HandlerError, match=r"^this agent knows no broker to check a network change against$"):
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path)
    assert fake_tools.calls()[-1] == ROLLBACK


def test_a_failed_change_is_rolled_back_and_reported(
    fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    fake_tools.add(
        "nmcli",
        script=ACTIVE
        + """\ncase "$*" in *"connection up"*) echo "Error: Connection activation failed." >&2; exit 4;; esac""",
    )
    fake_tools.add("busctl", script=BUSCTL)

    with pytest.raises(ToolFailed, match=r"^nmcli exited 4: Error: Connection activation failed\.$"):
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=broker)
    assert fake_tools.calls() == [*checkpointed("eth0", *STATIC_V4_ARGV)[:-1], ROLLBACK]


def test_a_failed_change_whose_rollback_fails_reports_both(
    fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    fake_tools.add(
        "nmcli",
        script="""case "$*" in *"device show"*) echo "Error: NetworkManager is not running." >&2; exit 8;; esac""",
    )
    refused = """case "$*" in *" CheckpointRollback "*) echo "Call failed: Timeout was reached" >&2; exit 1;; esac"""
    fake_tools.add("busctl", script=BUSCTL + "\n" + refused)

    with pytest.raises(HandlerError) as caught:
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=broker)
    assert str(caught.value) == (
        "nmcli exited 8: Error: NetworkManager is not running.; then rolling back failed (busctl exited 1: Call"
        f" failed: Timeout was reached); NetworkManager rolls back by itself {ROLLBACK_AFTER_S} s after the change"
        " began"
    )
    assert caught.value.result is not None
    assert caught.value.result["exit_code"] == 8


def test_a_rollback_that_fails_says_networkmanager_will_roll_back_itself(
    fake_tools: FakeTools, tmp_path: Path, lost_broker: BrokerReachability
) -> None:
    fake_tools.add("nmcli", script=ACTIVE)
    refused = """case "$*" in *" CheckpointRollback "*) echo "Call failed: Access denied" >&2; exit 1;; esac"""
    fake_tools.add("busctl", script=BUSCTL + "\n" + refused)

    with pytest.raises(HandlerError) as caught:
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=lost_broker)
    assert str(caught.value) == (
        "the change cut the device off its broker, and rolling back failed (busctl exited 1: Call failed: Access"
        f" denied); NetworkManager rolls back by itself {ROLLBACK_AFTER_S} s after the change began"
    )


def test_a_device_networkmanager_could_not_restore_is_named(
    fake_tools: FakeTools, tmp_path: Path, lost_broker: BrokerReachability
) -> None:
    fake_tools.add("nmcli", script=ACTIVE)
    partial = f"""case "$*" in *" CheckpointRollback "*) echo 'a{{su}} 1 "{DEVICE}" 3'; exit 0;; esac"""
    fake_tools.add("busctl", script=partial + "\n" + BUSCTL)

    with pytest.raises(HandlerError) as caught:
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=lost_broker)
    assert str(caught.value) == (
        f"the change cut the device off its broker, and NetworkManager could not roll back {DEVICE}"
    )


@pytest.mark.parametrize("answer", ['a{su} 1 "/org/freedesktop/NetworkManager/Devices/2 0', "a{su} 1", "done"])
def test_a_rollback_answer_that_cannot_be_read_is_not_taken_for_a_rollback(
    answer: str, fake_tools: FakeTools, tmp_path: Path, lost_broker: BrokerReachability
) -> None:
    # An unbalanced quote made shlex raise ValueError (an "internal agent error"); an answer naming no device was
    # read as every device restored.
    fake_tools.add("nmcli", script=ACTIVE)
    odd = f"""case "$*" in *" CheckpointRollback "*) printf '%s\\n' {shlex.quote(answer)}; exit 0;; esac"""
    fake_tools.add("busctl", script=odd + "\n" + BUSCTL)

    with pytest.raises(HandlerError) as caught:
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=lost_broker)
    assert str(caught.value) == (
        f"the change cut the device off its broker, and NetworkManager answered the rollback with {answer!r}, not"
        " with the result of each device"
    )


def test_a_checkpoint_networkmanager_already_rolled_back_is_not_reported_kept(
    fake_tools: FakeTools, tmp_path: Path, broker: BrokerReachability
) -> None:
    fake_tools.add("nmcli", script=ACTIVE)
    gone = """case "$*" in *" CheckpointDestroy "*) echo "Call failed: checkpoint does not exist" >&2; exit 1;; esac"""
    fake_tools.add("busctl", script=BUSCTL + "\n" + gone)

    with pytest.raises(HandlerError) as caught:
        execute(StaticIpHandler(), {"address": "192.0.2.10/24"}, tmp_path, reach_broker=broker)
    assert str(caught.value) == (
        "the broker was reachable, but the change could not be kept: busctl exited 1: Call failed: checkpoint does not"
        " exist"
    )
    assert fake_tools.calls() == checkpointed("eth0", *STATIC_V4_ARGV)


@pytest.mark.parametrize("handler", [EthernetHandler(), StaticIpHandler()], ids=["ethernet", "static-ip"])
def test_a_change_the_agent_died_in_is_left_to_networkmanager(handler: Handler) -> None:
    outcome = handler.outcome_after_restart("boot-1", "boot-1")

    assert outcome.result is None
    assert outcome.reason == (
        "the agent restarted during the network change: unless it had already found the broker reachable and kept"
        " the change, NetworkManager rolled it back by itself"
    )


def test_the_rollback_timeout_outlasts_every_step_and_the_check(tmp_path: Path) -> None:
    assert LinuxPlatform(boot_id_path=tmp_path / "boot_id").rollback_after_s() == 5 * 60 + 30


def test_the_broker_check_tries_every_node(broker: BrokerReachability, lost_broker: BrokerReachability) -> None:
    both = BrokerReachability((*lost_broker.nodes, *broker.nodes), within_s=1, retry_s=0.1)

    assert asyncio.run(both())
    assert not asyncio.run(lost_broker())
