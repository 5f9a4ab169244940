"""The table of operation handlers: what the agent can run, and on which platforms."""

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from agent.config import CustomAction, RemoteConnectionSettings
from agent.errors import UnsupportedOperation
from agent.handlers.apps import (
    AppConfigHandler,
    AppNotificationsHandler,
    AppPermissionHandler,
    AppStateHandler,
    ClearAppDataHandler,
)
from agent.handlers.artifacts import AgentLogHandler, BugreportHandler, LogsHandler, ScreenshotHandler
from agent.handlers.attention import BeepHandler, NotifyHandler
from agent.handlers.base import AnyHandler, PlatformTools
from agent.handlers.blueprint import BlueprintHandler
from agent.handlers.certificates import InstallCertificateHandler, UninstallCertificateHandler
from agent.handlers.content import InstallOtaHandler, SyncContentHandler
from agent.handlers.custom import ConvergeHandler, CustomActionHandler, WipeHandler
from agent.handlers.desktop import LockdownHandler, WallpaperHandler
from agent.handlers.device import LocationHandler, RotationHandler
from agent.handlers.display import BrightnessHandler, ScreenOffTimeoutHandler
from agent.handlers.kiosk import AllowlistHandler, KioskAppHandler, MultiAppModeHandler
from agent.handlers.lock import LockHandler
from agent.handlers.lockscreen import ClearPasscodeHandler, ResetLockscreenPasswordHandler
from agent.handlers.lost_mode import (
    DisableLostModeHandler,
    EnableLostModeHandler,
    LostModeLocationHandler,
    LostModeSoundHandler,
)
from agent.handlers.management import DeviceConfigHandler, NudgeHandler, RemoveAgentHandler, RemoveDeviceHandler
from agent.handlers.network import (
    AddWifiHandler,
    ApnOverrideHandler,
    BluetoothHandler,
    EthernetHandler,
    RemoveWifiHandler,
    SavedWifiOnlyHandler,
    StaticIpHandler,
)
from agent.handlers.packages import InstallAppHandler, InstallHandler, RefreshAppListHandler, UninstallHandler
from agent.handlers.power import RebootHandler, ShutDownHandler
from agent.handlers.regional import LanguageHandler, TimeZoneHandler
from agent.handlers.remote import RemoteConnectionHandler
from agent.handlers.restrictions import AllowHandler
from agent.handlers.shell import ShellHandler
from agent.handlers.sound import VolumeHandler
from agent.handlers.updates import OsUpdatePolicyHandler, PauseOsUpdatesHandler, PendingUpdatesHandler
from agent.handlers.wifi import WifiHandler
from shared.operations import OperationType


def build_registry(
    *,
    reboot_grace_s: float = 300.0,
    custom_actions: Mapping[str, CustomAction] = MappingProxyType({}),
    converge_actions: Sequence[str] = (),
    provision_action: str | None = None,
    wipe_action: str | None = None,
    remote_connection: RemoteConnectionSettings | None = None,
) -> Mapping[OperationType, AnyHandler]:
    """One handler instance per operation family, keyed by every operation type it runs."""
    handlers: tuple[AnyHandler, ...] = (
        CustomActionHandler(custom_actions),
        ConvergeHandler(custom_actions, list(converge_actions), provision_action),
        WipeHandler(custom_actions, wipe_action),
        DeviceConfigHandler(),
        RemoveAgentHandler(),
        RemoveDeviceHandler(),
        NudgeHandler(),
        RebootHandler(reboot_grace_s=reboot_grace_s),
        ShutDownHandler(shutdown_grace_s=reboot_grace_s),
        LockHandler(),
        EnableLostModeHandler(),
        DisableLostModeHandler(),
        LostModeLocationHandler(),
        LostModeSoundHandler(),
        ClearPasscodeHandler(),
        ResetLockscreenPasswordHandler(),
        LockdownHandler(),
        WifiHandler(),
        AddWifiHandler(),
        RemoveWifiHandler(),
        SavedWifiOnlyHandler(),
        ApnOverrideHandler(),
        BluetoothHandler(),
        EthernetHandler(),
        StaticIpHandler(),
        TimeZoneHandler(),
        LanguageHandler(),
        BrightnessHandler(),
        WallpaperHandler(),
        ScreenOffTimeoutHandler(),
        VolumeHandler(),
        NotifyHandler(),
        BeepHandler(),
        ShellHandler(),
        ScreenshotHandler(),
        LogsHandler(),
        AgentLogHandler(),
        BugreportHandler(),
        ClearAppDataHandler(),
        AppPermissionHandler(),
        AppStateHandler(),
        AppNotificationsHandler(),
        AppConfigHandler(),
        RotationHandler(),
        LocationHandler(),
        InstallHandler(),
        InstallAppHandler(),
        UninstallHandler(),
        RefreshAppListHandler(),
        InstallCertificateHandler(),
        UninstallCertificateHandler(),
        SyncContentHandler(),
        InstallOtaHandler(),
        BlueprintHandler(),
        KioskAppHandler(),
        MultiAppModeHandler(),
        AllowlistHandler(),
        OsUpdatePolicyHandler(),
        PauseOsUpdatesHandler(),
        PendingUpdatesHandler(),
        AllowHandler(),
        RemoteConnectionHandler(remote_connection),
    )
    table: dict[OperationType, AnyHandler] = {}
    for handler in handlers:
        for operation_type in handler.operation_types:
            if operation_type in table:
                raise ValueError(f"two handlers claim {operation_type}")
            table[operation_type] = handler
    return MappingProxyType(table)


REGISTRY = build_registry()


def capabilities(
    platform: PlatformTools, registry: Mapping[OperationType, AnyHandler] = REGISTRY
) -> list[OperationType]:
    """The operation types the agent advertises for a device: those whose handler `platform` can serve, sorted."""
    return sorted(operation_type for operation_type, handler in registry.items() if handler.supports(platform))


def handler_for(
    operation_type: OperationType, platform: PlatformTools, registry: Mapping[OperationType, AnyHandler] = REGISTRY
) -> AnyHandler:
    """The handler for `operation_type` on `platform`; UnsupportedOperation (a FAILED status at once) otherwise."""
    handler = registry.get(operation_type)
    if handler is None or not handler.supports(platform):
        raise UnsupportedOperation(f"{operation_type} is not supported on {platform.kind}")
    return handler
