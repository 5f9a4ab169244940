"""The `arguments` each operation type takes, validated the same way by the REST API and by the agent.

A type without an entry takes no arguments beyond what its handler documents as optional; unknown keys are refused.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.arguments.app_config import AppConfigArguments
from shared.arguments.apps import (
    AppNotificationsArguments,
    AppPackageArguments,
    AppPermissionArguments,
    AppStateArguments,
    CertificateArguments,
    CertificateNameArguments,
    InstallAppArguments,
    InstallArguments,
    OtaArguments,
    SimpleInstallArguments,
    SyncContentArguments,
    UninstallArguments,
)
from shared.arguments.blueprint import BlueprintArguments
from shared.arguments.diagnostics import LogsArguments
from shared.arguments.kiosk import AllowlistArguments, KioskAppArguments, MultiAppModeArguments
from shared.arguments.lockscreen import ClearPasscodeArguments, LockscreenPasswordArguments
from shared.arguments.management import ConvergeArguments, CustomActionArguments, DeviceConfigArguments
from shared.arguments.network import (
    ApnOverride,
    BluetoothArguments,
    EthernetSettings,
    SavedWifiOnly,
    StaticIpSettings,
    WifiArguments,
    WifiNetwork,
    WifiSsid,
)
from shared.arguments.remote import RemoteConnectionArguments
from shared.arguments.restrictions import AllowArguments
from shared.arguments.scripts import ShellArguments
from shared.arguments.system import (
    BeepArguments,
    BrightnessArguments,
    GpsArguments,
    LanguageArguments,
    LocationServiceArguments,
    LockdownArguments,
    LostModeArguments,
    LostModeSoundArguments,
    NotifyArguments,
    RotationArguments,
    ScreenOffTimeoutArguments,
    TimeZoneArguments,
    VolumeArguments,
    WallpaperArguments,
)
from shared.arguments.updates import OsUpdatePolicyArguments, PauseOsUpdatesArguments
from shared.messages import MAX_ARGUMENTS_BYTES, MAX_PAYLOAD_BYTES
from shared.operations import OperationType
from shared.signing import canonical


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgumentsError(ValueError):
    """Invalid `arguments`; `field` is the dotted path of the first problem, starting with `arguments`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


ARGUMENTS: Mapping[OperationType, type[BaseModel]] = MappingProxyType(
    {
        OperationType.CONVERGE: ConvergeArguments,
        OperationType.RUN_CUSTOM_ACTION: CustomActionArguments,
        OperationType.UPDATE_DEVICE_CONFIG: DeviceConfigArguments,
        OperationType.COLLECT_LOGS: LogsArguments,
        OperationType.REQUEST_DPCLOG: LogsArguments,
        OperationType.SET_WIFI_STATE: WifiArguments,
        OperationType.ADD_OVERRIDE_APN: ApnOverride,
        OperationType.ADD_WIFI_AP: WifiNetwork,
        OperationType.REMOVE_WIFI_AP: WifiSsid,
        OperationType.USE_ONLY_SAVED_WIFI_AP: SavedWifiOnly,
        OperationType.SET_BLUETOOTH_STATE: BluetoothArguments,
        OperationType.SET_ETHERNET_SETTINGS: EthernetSettings,
        OperationType.SET_STATIC_IP: StaticIpSettings,
        OperationType.SET_TIMEZONE: TimeZoneArguments,
        OperationType.SET_DEVICE_LANGUAGE: LanguageArguments,
        OperationType.SET_BRIGHTNESS_SCALE: BrightnessArguments,
        OperationType.SET_SCREEN_OFF_TIMEOUT: ScreenOffTimeoutArguments,
        OperationType.SET_STREAM_VOLUME: VolumeArguments,
        OperationType.NOTIFY_DEVICE: NotifyArguments,
        OperationType.BEEP_DEVICE: BeepArguments,
        OperationType.RUN_SHELL_SCRIPT: ShellArguments,
        OperationType.CLEAR_APP_DATA: AppPackageArguments,
        OperationType.SET_APP_PERMISSION: AppPermissionArguments,
        OperationType.SET_APP_STATE: AppStateArguments,
        OperationType.SET_APP_NOTIFICATIONS: AppNotificationsArguments,
        OperationType.CLEAR_PASSCODE: ClearPasscodeArguments,
        OperationType.RESET_LOCKSCREEN_PASSWORD: LockscreenPasswordArguments,
        OperationType.SET_ROTATION_STATE: RotationArguments,
        OperationType.SET_GPS_STATE: GpsArguments,
        OperationType.SET_LOCATION_SERVICE: LocationServiceArguments,
        OperationType.ENABLE_LOST_MODE: LostModeArguments,
        OperationType.PLAY_LOST_MODE_SOUND: LostModeSoundArguments,
        OperationType.INSTALL: InstallArguments,
        OperationType.INSTALL_APP: InstallAppArguments,
        OperationType.UNINSTALL: UninstallArguments,
        OperationType.UNINSTALL_APP: UninstallArguments,
        OperationType.INSTALL_CERTIFICATE: CertificateArguments,
        OperationType.UNINSTALL_CERTIFICATE: CertificateNameArguments,
        OperationType.SYNC_CONTENT: SyncContentArguments,
        OperationType.INSTALL_OTA: OtaArguments,
        OperationType.DEPLOY_SYSTEM_OTA: OtaArguments,
        OperationType.SIMPLE_INSTALL: SimpleInstallArguments,
        OperationType.UPDATE_BLUEPRINT: BlueprintArguments,
        OperationType.SET_KIOSK_APP: KioskAppArguments,
        OperationType.SET_MULTI_APP_MODE: MultiAppModeArguments,
        OperationType.ADD_TO_WHITELIST: AllowlistArguments,
        OperationType.REMOVE_FROM_WHITELIST: AllowlistArguments,
        OperationType.SET_WALLPAPER: WallpaperArguments,
        OperationType.SET_DEVICE_LOCKDOWN_STATE: LockdownArguments,
        OperationType.PAUSE_OS_UPDATES: PauseOsUpdatesArguments,
        OperationType.SET_OS_UPDATE_POLICY: OsUpdatePolicyArguments,
        OperationType.ALLOW_BLUETOOTH: AllowArguments,
        OperationType.ALLOW_CAMERA: AllowArguments,
        OperationType.APPLY_APP_CONFIG: AppConfigArguments,
        OperationType.REMOTE_CONNECTION: RemoteConnectionArguments,
    }
)


def arguments_model(operation_type: OperationType) -> type[BaseModel]:
    return ARGUMENTS.get(operation_type, NoArguments)


def validate_arguments(operation_type: OperationType, arguments: Mapping[str, Any]) -> BaseModel:
    """Parse `arguments` for `operation_type`; raise ArgumentsError naming every problem, the first one's field, or
    saying that commands carrying them would be larger than a device accepts."""
    try:
        parsed = arguments_model(operation_type).model_validate(dict(arguments))
    except ValidationError as err:
        problems = [(".".join(["arguments", *(str(part) for part in e["loc"])]), e["msg"]) for e in err.errors()]
        message = "invalid arguments: " + "; ".join(
            f"{field.removeprefix('arguments.')}: {msg}" for field, msg in problems
        )
        raise ArgumentsError(problems[0][0], message) from err
    # Measured as the commands carry them (escapes and all), not by their parts: a device drops a larger command
    # unread, and the operation would wait for it until its delivery deadline.
    size = len(canonical(arguments))
    if size > MAX_ARGUMENTS_BYTES:
        raise ArgumentsError(
            "arguments",
            f"the arguments take {size} bytes in a command; at most {MAX_ARGUMENTS_BYTES} fit in the"
            f" {MAX_PAYLOAD_BYTES}-byte message a device accepts",
        )
    return parsed
