"""Saved Wi-Fi networks, the saved-networks-only policy, mobile-data APNs, Bluetooth and wired addressing."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext, RestartOutcome
from agent.platforms.contract import BluetoothRadio, MobileApns, WifiJoinPolicy, WifiNetworks, WiredNetwork
from shared.arguments.network import (
    ApnOverride,
    BluetoothArguments,
    EthernetSettings,
    SavedWifiOnly,
    StaticIpSettings,
    WifiNetwork,
    WifiSsid,
)
from shared.operations import OperationType


class AddWifiHandler(Handler[WifiNetwork, WifiNetworks]):
    """ADD_WIFI_AP: save a network and join it where that is safe; the result never carries the password."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.ADD_WIFI_AP})

    async def run(self, arguments: WifiNetwork, context: HandlerContext[WifiNetworks]) -> dict[str, Any]:
        joined = await context.platform.add_wifi_network(arguments)
        return {**arguments.model_dump(mode="json", exclude={"password"}), **joined}


class RemoveWifiHandler(Handler[WifiSsid, WifiNetworks]):
    """REMOVE_WIFI_AP: forget a saved network; one that is not saved is a failure."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REMOVE_WIFI_AP})

    async def run(self, arguments: WifiSsid, context: HandlerContext[WifiNetworks]) -> dict[str, Any]:
        await context.platform.remove_wifi_network(arguments.ssid)
        return {"ssid": arguments.ssid, "removed": True}


class SavedWifiOnlyHandler(Handler[SavedWifiOnly, WifiJoinPolicy]):
    """USE_ONLY_SAVED_WIFI_AP: allow or forbid joining networks that are not saved on the device."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.USE_ONLY_SAVED_WIFI_AP})

    async def run(self, arguments: SavedWifiOnly, context: HandlerContext[WifiJoinPolicy]) -> dict[str, Any]:
        return {"enabled": arguments.enabled, **await context.platform.use_only_saved_wifi(arguments.enabled)}


class ApnOverrideHandler(Handler[ApnOverride, MobileApns]):
    """ADD_OVERRIDE_APN: save a mobile-data profile for an APN; the result never carries the password."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.ADD_OVERRIDE_APN})

    async def run(self, arguments: ApnOverride, context: HandlerContext[MobileApns]) -> dict[str, Any]:
        await context.platform.add_apn_override(arguments)
        return arguments.model_dump(mode="json", exclude={"password"})


class BluetoothHandler(Handler[BluetoothArguments, BluetoothRadio]):
    """SET_BLUETOOTH_STATE: switch every Bluetooth adapter on or off."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_BLUETOOTH_STATE})

    async def run(self, arguments: BluetoothArguments, context: HandlerContext[BluetoothRadio]) -> dict[str, Any]:
        await context.platform.set_bluetooth(arguments.bluetooth_state)
        return {"bluetooth_state": "on" if arguments.bluetooth_state else "off"}


WIRED_CHANGE_CUT_SHORT = (
    "the agent restarted during the network change: unless it had already found the broker reachable and kept the"
    " change, NetworkManager rolled it back by itself"
)


class EthernetHandler(Handler[EthernetSettings, WiredNetwork]):
    """SET_ETHERNET_SETTINGS: connect or disconnect a wired interface, by DHCP or with a static address; kept only
    if the broker can still be reached."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_ETHERNET_SETTINGS})

    async def run(self, arguments: EthernetSettings, context: HandlerContext[WiredNetwork]) -> dict[str, Any]:
        await context.platform.configure_ethernet(arguments, context.reach_broker)
        return {**arguments.model_dump(mode="json"), "broker_reachable": True}

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        return RestartOutcome(reason=WIRED_CHANGE_CUT_SHORT)


class StaticIpHandler(Handler[StaticIpSettings, WiredNetwork]):
    """SET_STATIC_IP: give a wired interface a fixed address; kept only if the broker can still be reached."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_STATIC_IP})

    async def run(self, arguments: StaticIpSettings, context: HandlerContext[WiredNetwork]) -> dict[str, Any]:
        await context.platform.set_static_ip(arguments, context.reach_broker)
        return {**arguments.model_dump(mode="json"), "broker_reachable": True}

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        return RestartOutcome(reason=WIRED_CHANGE_CUT_SHORT)
