"""Saved Wi-Fi networks, Bluetooth and wired addressing on Linux, through NetworkManager's nmcli and rfkill."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

from agent.errors import HandlerError, ToolFailed
from agent.platforms.linux_tools import LinuxTools
from shared.arguments.network import EthernetSettings, StaticIpSettings, WifiNetwork, WifiSecurity

NMCLI_NO_SUCH_OBJECT = 10
"""nmcli's exit status when a connection, device or access point does not exist (nmcli(1), EXIT STATUS)."""

WIFI_TYPE = "802-11-wireless"
REDACTED = "[password]"


class LinuxNetwork(LinuxTools):
    """NetworkManager profiles for Wi-Fi and Ethernet, and the rfkill switch for Bluetooth.

    There is no `use_only_saved_wifi`: NetworkManager never joins a network that has no saved profile on its own,
    and Linux has no switch that stops a user from saving one, so USE_ONLY_SAVED_WIFI_AP is unsupported here rather
    than a success that changes nothing.
    """

    async def add_wifi_network(self, network: WifiNetwork) -> None:
        """Save `network` as a profile named after its SSID; a Wi-Fi profile of that name is replaced.

        The password reaches nmcli in its argument list, so for the milliseconds nmcli runs a local user could read
        it in /proc/<pid>/cmdline (unless /proc is mounted with hidepid=2). nmcli has no non-interactive way to take
        a secret it saves from stdin or a file (`passwd-file` only feeds one activation), and writing a keyfile into
        NetworkManager's system-connections directory ourselves would tie the agent to that plugin, its directory and
        its escaping rules. NetworkManager then keeps the secret in a root-only keyfile, and it is scrubbed from every
        error and result here.
        """
        types = await self._connection_types(network.ssid)
        if types and set(types) != {WIFI_TYPE}:
            raise HandlerError(f"a saved connection named {network.ssid!r} is not a Wi-Fi network")
        if types:
            # Replace rather than modify: going from a secured to an open network means removing a whole setting.
            await self.tool("nmcli", "connection", "delete", "id", network.ssid)
        with password_hidden(network.password):
            await self.tool(
                "nmcli", "connection", "add", "type", "wifi", "con-name", network.ssid, *wifi_properties(network)
            )

    async def remove_wifi_network(self, ssid: str) -> None:
        if set(await self._connection_types(ssid)) != {WIFI_TYPE}:
            raise HandlerError(f"no saved Wi-Fi network named {ssid!r}")
        await self.tool("nmcli", "connection", "delete", "id", ssid)

    async def set_bluetooth(self, enabled: bool) -> None:
        """Flip the kernel's rfkill switch for every Bluetooth adapter; bluetoothd powers them up when unblocked."""
        if not await switch_bluetooth_radios(self, enabled):
            raise HandlerError("no Bluetooth adapter: rfkill lists no bluetooth device")

    async def configure_ethernet(self, settings: EthernetSettings) -> None:
        if not settings.enabled:
            await self.tool("nmcli", "device", "disconnect", settings.interface)
            return
        properties = ip_properties(settings.address, settings.gateway, settings.dns, dhcp=settings.dhcp)
        await self._readdress(settings.interface, properties)

    async def set_static_ip(self, settings: StaticIpSettings) -> None:
        await self._readdress(
            settings.interface, ip_properties(settings.address, settings.gateway, settings.dns, dhcp=False)
        )

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
