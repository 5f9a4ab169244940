"""Saved Wi-Fi networks, mobile-data APNs, Bluetooth and wired addressing on Linux, through NetworkManager (nmcli,
and busctl for its checkpoints), polkit and rfkill."""

import asyncio
import json
import math
import re
import shlex
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolFailed, UnsupportedOperation
from agent.files import write_atomically
from agent.platforms.linux_tools import LinuxTools
from agent.reachability import REACH_WITHIN_S, ReachabilityCheck
from shared.arguments.network import (
    ApnOverride,
    EthernetSettings,
    StaticIpSettings,
    WifiNetwork,
    WifiSecurity,
)

NMCLI_NO_SUCH_OBJECT = 10
"""nmcli's exit status when a connection, device or access point does not exist (nmcli(1), EXIT STATUS)."""

WIFI_TYPE = "802-11-wireless"
GSM_TYPE = "gsm"
REDACTED = "[password]"

NM = ("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager")
"""The bus name, object and interface of NetworkManager's D-Bus API, which alone has checkpoints (nmcli has none)."""
CHECKPOINT_FLAGS = 2
"""NM_CHECKPOINT_CREATE_FLAG_DELETE_NEW_CONNECTIONS: a rollback also removes a profile `nmcli device connect` made.
Not DISCONNECT_NEW_DEVICES: NetworkManager refuses it for a checkpoint of named devices (seen on Debian 12's 1.42 in
the VM tier; fakes had accepted it). Without ALLOW_OVERLAPPING, a change still pending on the device makes creation
fail."""
STEPS_IN_CHECKPOINT = 5
"""The most nmcli calls a wired change makes under its checkpoint: device show, device connect, device show,
connection modify, connection up."""
JOIN_WITHIN_S = 45
"""How long a join may take: a scan, the handshake and DHCP (about 5 s in the VM tier; 25 s to give up on a network
out of range)."""
NOT_IN_RANGE = "The Wi-Fi network could not be found"
"""How nmcli ends an activation that found no network of the SSID (NM_DEVICE_STATE_REASON_SSID_NOT_FOUND)."""
OBJECT_PATH = re.compile(r'^o "(/[A-Za-z0-9_/]*)"$')

SAVED_WIFI_ONLY_RULE = "polkit-1/rules.d/49-tether-saved-wifi-only.rules"
"""Under etc_dir. polkitd watches its rules directories and reloads every rule when a file in them changes."""
SAVED_WIFI_ONLY_ACTIONS = (
    # Adding or changing a connection profile, whether for every user or for oneself: `nmcli device wifi connect`
    # to a new network (AddAndActivateConnection) needs one of these, even for an in-memory profile.
    "org.freedesktop.NetworkManager.settings.modify.system",
    "org.freedesktop.NetworkManager.settings.modify.own",
    # Sharing a connection over a new Wi-Fi network (a hotspot) adds a profile too.
    "org.freedesktop.NetworkManager.wifi.share.protected",
    "org.freedesktop.NetworkManager.wifi.share.open",
)
_DENIED = ",".join(f"\n        {json.dumps(action)}" for action in SAVED_WIFI_ONLY_ACTIONS)  # no trailing comma: ES5
SAVED_WIFI_ONLY_POLICY = f"""\
// Written by tetherd for USE_ONLY_SAVED_WIFI_AP; USE_ONLY_SAVED_WIFI_AP with enabled false removes it.
// Only root may add or change NetworkManager profiles, so users join saved networks and no other.
polkit.addRule(function(action, subject) {{
    var denied = [{_DENIED}
    ];
    if (denied.indexOf(action.id) >= 0 && subject.user != "root") {{
        return polkit.Result.NO;
    }}
}});
"""


class LinuxNetwork(LinuxTools):
    """NetworkManager profiles for Wi-Fi, mobile data and Ethernet, the rfkill switch for Bluetooth, and a polkit
    rule for the saved-networks-only policy.
    """

    async def add_wifi_network(self, network: WifiNetwork) -> dict[str, Any]:
        """Save `network` as a profile named after its SSID (a Wi-Fi profile of that name is replaced) and, with
        autoconnect, join it now on a Wi-Fi device that is on no network: `{"joined": true, "device": ...}`.

        A network that is out of range, or with no free Wi-Fi device to try it, stays saved (`joined: false` and
        why), to be joined by NetworkManager when it can be. One that NetworkManager refuses (a wrong password, say)
        is deleted again and fails with NetworkManager's reason: a profile that can never connect would only retry.
        A device already on a network is never moved off it here, lest its broker link go with it.

        The password reaches nmcli in its argument list, so for the milliseconds nmcli runs a local user could read
        it in /proc/<pid>/cmdline (unless /proc is mounted with hidepid=2). nmcli has no non-interactive way to take
        a secret it saves from stdin or a file (`passwd-file` only feeds one activation), and writing a keyfile into
        NetworkManager's system-connections directory ourselves would tie the agent to that plugin, its directory and
        its escaping rules. NetworkManager then keeps the secret in a root-only keyfile, and it is scrubbed from every
        error and result here.
        """
        await self._make_room(network.ssid, WIFI_TYPE, "a Wi-Fi network")
        # Looked for before the profile exists: NetworkManager may start joining it by itself the moment it is added,
        # and a device "connecting" would no longer read as free (seen in the VM tier).
        device = await self._free_wifi_device() if network.autoconnect else None
        with password_hidden(network.password):
            await self.tool(
                "nmcli", "connection", "add", "type", "wifi", "con-name", network.ssid, *wifi_properties(network)
            )
            if not network.autoconnect:
                return {"joined": False, "not_joined": "autoconnect is off: saved only"}
            if device is None:
                return {"joined": False, "not_joined": "no Wi-Fi device is free (each is on a network, or off)"}
            try:
                await self.tool(
                    "nmcli", "--wait", str(JOIN_WITHIN_S), "connection", "up", "id", network.ssid, "ifname", device,
                    limit_s=JOIN_WITHIN_S + 10,
                )  # fmt: skip
            except ToolFailed as err:
                reason = nmcli_error(err)
                if reason.endswith(NOT_IN_RANGE):
                    return {
                        "joined": False,
                        "not_joined": f"{device} found no such network in range; saved for when it is",
                    }
                await self.tool("nmcli", "connection", "delete", "id", network.ssid)
                raise HandlerError(f"{device} could not join {network.ssid!r}, so it was not saved: {reason}") from err
        return {"joined": True, "device": device}

    async def _free_wifi_device(self) -> str | None:
        """The first Wi-Fi device NetworkManager has on no network, radio on; None if there is none."""
        shown = await self.tool("nmcli", "-g", "DEVICE,TYPE,STATE", "device")
        for line in shown.stdout_tail.splitlines():
            fields = line.rsplit(":", 2)
            if len(fields) == 3 and fields[1:] == ["wifi", "disconnected"]:
                return fields[0].replace("\\:", ":")
        return None

    async def add_apn_override(self, override: ApnOverride) -> None:
        """Save a mobile-data profile for any modem ModemManager drives; a mobile profile of that name is replaced.

        The password, if any, reaches nmcli as ADD_WIFI_AP's does, and is scrubbed from every error likewise.
        """
        await self._make_room(override.name, GSM_TYPE, "a mobile-data profile")
        with password_hidden(override.password):
            await self.tool(
                "nmcli", "connection", "add", "type", "gsm", "ifname", "*", "con-name", override.name,
                *apn_properties(override),
            )  # fmt: skip

    async def use_only_saved_wifi(self, enabled: bool) -> dict[str, Any]:
        """Write (or remove) a polkit rule that lets no one but root add or change a NetworkManager profile.

        NetworkManager never joins a network without a saved profile on its own, so what is left to forbid is a
        user saving one; polkitd reloads its rules when the file changes. The file is read back for the result.
        """
        path = self.etc_dir / SAVED_WIFI_ONLY_RULE
        if enabled and not path.parent.is_dir():
            # polkit before 0.106 (Debian 11, Ubuntu 22.04) reads .pkla files only and never makes this directory.
            raise UnsupportedOperation(
                f"polkit on this device reads no JavaScript rules: {path.parent} does not exist (polkit 0.106 or "
                "later has it); nothing was changed"
            )
        await asyncio.to_thread(_write_or_remove, path, SAVED_WIFI_ONLY_POLICY.encode() if enabled else None)
        in_force = await asyncio.to_thread(_holds, path, SAVED_WIFI_ONLY_POLICY.encode())
        if in_force != enabled:
            raise HandlerError(f"{path} {'does not hold' if enabled else 'still holds'} the rule after writing it")
        return {"rule": str(path), "in_force": in_force}

    async def remove_wifi_network(self, ssid: str) -> None:
        if set(await self._connection_types(ssid)) != {WIFI_TYPE}:
            raise HandlerError(f"no saved Wi-Fi network named {ssid!r}")
        await self.tool("nmcli", "connection", "delete", "id", ssid)

    async def set_bluetooth(self, enabled: bool) -> None:
        """Flip the kernel's rfkill switch for every Bluetooth adapter; bluetoothd powers them up when unblocked."""
        if not await switch_bluetooth_radios(self, enabled):
            raise HandlerError("no Bluetooth adapter: rfkill lists no bluetooth device")

    async def configure_ethernet(self, settings: EthernetSettings, still_reachable: ReachabilityCheck) -> None:
        change: Callable[[], Awaitable[object]]
        if settings.enabled:
            properties = ip_properties(settings.address, settings.gateway, settings.dns, dhcp=settings.dhcp)
            change = partial(self._readdress, settings.interface, properties)
        else:
            change = partial(self.tool, "nmcli", "device", "disconnect", settings.interface)
        await self._kept_if_reachable(settings.interface, change, still_reachable)

    async def set_static_ip(self, settings: StaticIpSettings, still_reachable: ReachabilityCheck) -> None:
        properties = ip_properties(settings.address, settings.gateway, settings.dns, dhcp=False)
        await self._kept_if_reachable(
            settings.interface, partial(self._readdress, settings.interface, properties), still_reachable
        )

    def rollback_after_s(self) -> int:
        """When NetworkManager rolls a change back by itself: after every step and the broker check had their time,
        so that it only does when the agent is gone (or hung) before it could decide."""
        return math.ceil(STEPS_IN_CHECKPOINT * self.tool_timeout + REACH_WITHIN_S)

    async def _kept_if_reachable(
        self, interface: str, change: Callable[[], Awaitable[object]], still_reachable: ReachabilityCheck
    ) -> None:
        """Make `change` under a NetworkManager checkpoint of `interface`, and keep it only if the broker can still
        be reached; otherwise, or if the change fails, roll back to the checkpoint.

        Should the agent die or hang midway, NetworkManager rolls back by itself after `rollback_after_s`, and the
        device is back on the addressing it had, the one the agent last reached its broker with.
        """
        device = await self._nm_object("GetDeviceByIpIface", "s", interface)
        checkpoint = await self._nm_object(
            "CheckpointCreate", "aouu", "1", device, str(self.rollback_after_s()), str(CHECKPOINT_FLAGS)
        )
        try:
            await change()
            reachable = await still_reachable()
        except HandlerError as err:
            problem = await self._roll_back(checkpoint)
            if problem is None:
                raise
            raise HandlerError(f"{err}; then {problem}", result=err.result) from err
        if not reachable:
            problem = await self._roll_back(checkpoint)
            if problem is None:
                raise HandlerError("rolled back: the change cut the device off its broker")
            raise HandlerError(f"the change cut the device off its broker, and {problem}")
        try:
            await self._nm_call("CheckpointDestroy", "o", checkpoint)
        except HandlerError as err:
            # Most likely the checkpoint's time ran out and NetworkManager has rolled back already.
            raise HandlerError(f"the broker was reachable, but the change could not be kept: {err}") from err

    async def _roll_back(self, checkpoint: str) -> str | None:
        """Restore `checkpoint`; None when it was, else what went wrong."""
        try:
            answer = await self._nm_call("CheckpointRollback", "o", checkpoint)
        except HandlerError as err:
            return (
                f"rolling back failed ({err}); NetworkManager rolls back by itself {self.rollback_after_s()} s after"
                " the change began"
            )
        # `a{su} N "DEVICE" RESULT ...`: 0 is NM_ROLLBACK_RESULT_OK. Anything else is not taken for a rollback.
        try:
            words = shlex.split(answer)
        except ValueError:
            words = []
        devices = words[2::2]
        if words[:1] != ["a{su}"] or not devices or len(words) != 2 + 2 * len(devices) or words[1] != str(len(devices)):
            return f"NetworkManager answered the rollback with {answer!r}, not with the result of each device"
        failed = [device for device, result in zip(devices, words[3::2], strict=True) if result != "0"]
        if failed:
            return f"NetworkManager could not roll back {', '.join(failed)}"
        return None

    async def _nm_object(self, method: str, signature: str, *arguments: str) -> str:
        """Call a NetworkManager method that returns one object path, and return that path."""
        answer = await self._nm_call(method, signature, *arguments)
        match = OBJECT_PATH.fullmatch(answer)
        if match is None:
            raise HandlerError(f"busctl answered {method} with {answer!r}, not an object path")
        return match[1]

    async def _nm_call(self, method: str, signature: str, *arguments: str) -> str:
        shown = await self.tool("busctl", "call", *NM, method, signature, *arguments)
        return shown.stdout_tail.strip()

    async def _readdress(self, interface: str, properties: Sequence[str]) -> None:
        """Change the profile `interface` uses and activate it again, so the new addressing applies now."""
        uuid = await self._active_profile(interface)
        if not uuid:
            # Nothing active on the device: NetworkManager picks a profile for it, or creates one.
            await self.tool("nmcli", "device", "connect", interface)
            uuid = await self._active_profile(interface)
            if not uuid:
                raise HandlerError(f"{interface} has no NetworkManager connection to configure")
        await self.tool("nmcli", "connection", "modify", "uuid", uuid, *properties)
        await self.tool("nmcli", "connection", "up", "uuid", uuid, "ifname", interface)

    async def _active_profile(self, interface: str) -> str:
        """The UUID of the profile active on `interface` (names may repeat, UUIDs do not), or "" if none is."""
        shown = await self.tool("nmcli", "--escape", "no", "-g", "GENERAL.CON-UUID", "device", "show", interface)
        return shown.stdout_tail.strip()

    async def _make_room(self, name: str, connection_type: str, what: str) -> None:
        """Delete the profile `name` if it is of `connection_type`; refuse if a profile of that name is not."""
        types = await self._connection_types(name)
        if types and set(types) != {connection_type}:
            raise HandlerError(f"a saved connection named {name!r} is not {what}")
        if types:
            # Replace rather than modify: dropping a password or a security setting means removing a whole setting.
            await self.tool("nmcli", "connection", "delete", "id", name)

    async def _connection_types(self, name: str) -> list[str]:
        """The type of every saved profile named `name`: ["802-11-wireless"] for one Wi-Fi network, [] for none."""
        try:
            shown = await self.tool(
                "nmcli", "--escape", "no", "-g", "connection.type", "connection", "show", "id", name
            )
        except ToolFailed as err:
            if err.result is not None and err.result.get("exit_code") == NMCLI_NO_SUCH_OBJECT:
                return []
            raise
        return [line.strip() for line in shown.stdout_tail.splitlines() if line.strip()]


async def switch_bluetooth_radios(tools: LinuxTools, enabled: bool) -> bool:
    """rfkill-unblock or block every Bluetooth adapter; False, with nothing switched, when rfkill lists none."""
    adapters = await tools.tool("rfkill", "--noheadings", "--output", "ID", "list", "bluetooth")
    if not adapters.stdout_tail.strip():
        # rfkill succeeds without touching anything when there is nothing to switch.
        return False
    await tools.tool("rfkill", "unblock" if enabled else "block", "bluetooth")
    return True


def nmcli_error(failed: ToolFailed) -> str:
    """nmcli's own `Error: ...` line (its last line is a hint to read the journal), without the prefix."""
    stderr = str((failed.result or {}).get("stderr", ""))
    for line in stderr.splitlines():
        if line.startswith("Error: "):
            return line.removeprefix("Error: ").removeprefix("Connection activation failed: ").strip()
    return str(failed)


def wifi_properties(network: WifiNetwork) -> list[str]:
    """nmcli property/value pairs for a Wi-Fi profile; the password, if any, comes last."""
    properties = [
        "802-11-wireless.ssid",
        network.ssid,
        "802-11-wireless.hidden",
        "yes" if network.hidden else "no",
        "connection.autoconnect",
        "yes" if network.autoconnect else "no",
    ]
    if network.security is not WifiSecurity.OPEN and network.password is not None:
        properties += ["802-11-wireless-security.key-mgmt", network.security.value]
        properties += ["802-11-wireless-security.psk", network.password]
    return properties


def apn_properties(override: ApnOverride) -> list[str]:
    """nmcli property/value pairs for a mobile-data profile; the password, if any, comes last."""
    properties = ["gsm.apn", override.apn]
    if override.auth is not None:
        # NetworkManager hands ModemManager the methods its ppp setting does not refuse.
        refused = ["pap", "chap", "mschap", "mschapv2", "eap"]
        refused.remove(override.auth.value)
        for method in refused:
            properties += [f"ppp.refuse-{method}", "yes"]
    if override.username is not None:
        properties += ["gsm.username", override.username]
    properties += ["ipv4.method", "auto"]
    if override.password is not None:
        properties += ["gsm.password", override.password]
    return properties


def ip_properties(
    address: IPv4Interface | IPv6Interface | None,
    gateway: IPv4Address | IPv6Address | None,
    dns: Sequence[IPv4Address | IPv6Address],
    *,
    dhcp: bool,
) -> list[str]:
    """nmcli property/value pairs for the address's IP version (IPv4 for DHCP); the other version is left alone.

    Empty values clear what a previous configuration set. Given DNS servers replace the ones DHCP offers.
    """
    family = f"ipv{4 if address is None else address.version}"
    properties = [
        f"{family}.addresses",
        "" if address is None else str(address),
        f"{family}.gateway",
        "" if gateway is None else str(gateway),
        f"{family}.method",
        "auto" if dhcp else "manual",
    ]
    for version in (4, 6):
        servers = [str(server) for server in dns if server.version == version]
        if servers or family == f"ipv{version}":
            properties += [f"ipv{version}.dns", ",".join(servers)]
            properties += [f"ipv{version}.ignore-auto-dns", "yes" if servers else "no"]
    return properties


@contextmanager
def password_hidden(password: str | None) -> Iterator[None]:
    """Re-raise a HandlerError with `password` replaced in its message and result, should a tool have echoed it."""
    try:
        yield
    except HandlerError as err:
        if password is None:
            raise
        result: dict[str, Any] | None = None
        if err.result is not None:
            result = {
                key: value.replace(password, REDACTED) if isinstance(value, str) else value
                for key, value in err.result.items()
            }
        # `from None`: the original error, password and all, must not show up in a logged traceback.
        raise type(err)(str(err).replace(password, REDACTED), result=result) from None


def _write_or_remove(path: Path, content: bytes | None) -> None:
    if content is not None:
        write_atomically(path, content)
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise HandlerError(f"cannot remove {path}: {err.strerror or err}") from err


def _holds(path: Path, content: bytes) -> bool:
    try:
        return path.read_bytes() == content
    except FileNotFoundError:
        return False
    except OSError as err:
        raise HandlerError(f"cannot read {path} back: {err.strerror or err}") from err
