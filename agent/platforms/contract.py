"""What handlers may ask of a platform, one runtime-checkable protocol per capability.

A handler names the protocol it `needs`; a platform (Linux, an Android device over adb) has a capability exactly when
it implements the protocol's methods, so the capabilities an agent advertises follow from its platform classes.
Methods raise agent.errors.HandlerError subclasses (ToolNotFound, ToolFailed, ToolTimeout) with readable messages.
"""

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agent.process import ProcessResult
from shared.arguments.apps import AppState, PackageSpec, SoftwareType
from shared.arguments.network import EthernetSettings, StaticIpSettings, WifiNetwork
from shared.arguments.restrictions import Restriction
from shared.arguments.system import AudioStream, LocationMode, Rotation
from shared.arguments.updates import OsUpdatePolicyArguments


@runtime_checkable
class Rebooter(Protocol):
    async def reboot(self) -> None: ...


@runtime_checkable
class PowerOff(Protocol):
    async def shut_down(self) -> None: ...


@runtime_checkable
class AgentRemover(Protocol):
    async def remove_agent(self, delay_s: float) -> str:
        """Stop and disable the agent's own service `delay_s` from now, once its last status is out; return the unit."""
        ...


@runtime_checkable
class SessionLocker(Protocol):
    async def lock_sessions(self) -> None: ...


@runtime_checkable
class WifiRadio(Protocol):
    async def set_wifi(self, enabled: bool) -> None: ...


@runtime_checkable
class WifiNetworks(Protocol):
    """Saved Wi-Fi networks. Implementations keep the password out of errors, results and logs."""

    async def add_wifi_network(self, network: WifiNetwork) -> None: ...
    async def remove_wifi_network(self, ssid: str) -> None:
        """Raise a HandlerError naming `ssid` when no Wi-Fi network of that name is saved."""
        ...


@runtime_checkable
class WifiJoinPolicy(Protocol):
    """Whether the device may join networks that are not saved on it (Linux has no such switch)."""

    async def use_only_saved_wifi(self, enabled: bool) -> None: ...


@runtime_checkable
class BluetoothRadio(Protocol):
    async def set_bluetooth(self, enabled: bool) -> None: ...


@runtime_checkable
class WiredNetwork(Protocol):
    async def configure_ethernet(self, settings: EthernetSettings) -> None: ...
    async def set_static_ip(self, settings: StaticIpSettings) -> None: ...


@runtime_checkable
class Clock(Protocol):
    async def set_time_zone(self, zone: str) -> None: ...


@runtime_checkable
class Locale(Protocol):
    async def set_language(self, locale: str) -> None: ...


@runtime_checkable
class Display(Protocol):
    async def set_brightness(self, percent: int) -> None: ...
    async def set_screen_off_timeout(self, seconds: int) -> None: ...


@runtime_checkable
class RotationControl(Protocol):
    async def set_rotation(self, rotation: Rotation) -> None: ...


@runtime_checkable
class Audio(Protocol):
    async def set_stream_volume(self, stream: AudioStream, percent: int) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, title: str, message: str) -> None: ...


@runtime_checkable
class Beeper(Protocol):
    async def beep(self, seconds: float) -> None: ...


@runtime_checkable
class Attention(Notifier, Beeper, Protocol):
    """Notifier and Beeper. Android can notify but not beep over adb, so a handler should need only the one it uses."""


@runtime_checkable
class PackageInstall(Protocol):
    """Installing system packages (Linux) from the configured repositories or a package file; adb has no store.

    A `software_type` picks the package manager (none: the device's default); one the device lacks raises
    UnsupportedOperation naming the types it has.
    """

    def check_software_type(self, software_type: SoftwareType | None) -> None: ...
    async def install_packages(self, packages: Sequence[PackageSpec]) -> None:
        """From the repositories, whatever the specs' `url`."""
        ...

    async def install_package_file(self, path: Path, spec: PackageSpec) -> None:
        """Install the file at `path` only if it is `spec`'s package, at `spec.version` if given."""
        ...

    async def installed_versions(self, software_type: SoftwareType | None) -> dict[str, str]:
        """Name -> version of every package `software_type`'s package manager has installed."""
        ...


@runtime_checkable
class PackageRemoval(Protocol):
    """Removing system packages (Linux) or apps (Android) by name."""

    async def remove_packages(self, names: Sequence[str], software_type: SoftwareType | None = None) -> None: ...


@runtime_checkable
class PackageListing(Protocol):
    async def list_packages(self) -> list[dict[str, str]]:
        """[{"name": ..., "version": ...}] of everything installed."""
        ...


@runtime_checkable
class Packages(PackageInstall, PackageRemoval, PackageListing, Protocol):
    """All three package protocols (Linux). A handler should need only the one it uses, so Android gets the rest."""


@runtime_checkable
class AppFiles(Protocol):
    """Installing a downloaded app or package file (an .apk, a .deb or an .rpm)."""

    async def install_app_file(self, path: Path) -> None: ...


@runtime_checkable
class AppControl(Protocol):
    """Per-app controls that only Android has."""

    async def clear_app_data(self, package: str) -> None: ...
    async def set_app_permission(self, package: str, permission: str, granted: bool) -> None: ...
    async def set_app_state(self, package: str, state: AppState) -> None: ...


@runtime_checkable
class Location(Protocol):
    async def set_location_mode(self, mode: LocationMode) -> None: ...


@runtime_checkable
class Certificates(Protocol):
    async def install_certificate(self, name: str, pem: bytes) -> Path:
        """Trust the CA certificates in `pem` under `name`, replacing any of that name; return where they are stored."""
        ...

    async def uninstall_certificate(self, name: str) -> None: ...


@runtime_checkable
class SystemUpdate(Protocol):
    async def install_update(self, path: Path) -> None: ...


@runtime_checkable
class OsUpdates(Protocol):
    """When the system updates itself. Each method returns what it did and what it read back, as the result."""

    async def set_os_update_policy(self, policy: OsUpdatePolicyArguments) -> dict[str, Any]: ...
    async def pause_os_updates(self, until: datetime | None) -> dict[str, Any]:
        """Pause automatic updates until `until` (an aware datetime) or, with None, until resumed."""
        ...

    async def resume_os_updates(self) -> dict[str, Any]: ...


@runtime_checkable
class Restrictions(Protocol):
    """Device-wide restrictions (ALLOW_*): what a user of the device may use at all."""

    async def set_allowed(self, restriction: Restriction, allowed: bool) -> dict[str, Any]:
        """Allow or disallow `restriction`; return what was done and what is in force now."""
        ...


@runtime_checkable
class Screenshots(Protocol):
    async def capture_screenshot(self, destination: Path) -> None:
        """Write a PNG of the screen to `destination`."""
        ...


@runtime_checkable
class Logs(Protocol):
    async def collect_logs(self, destination: Path, *, since_minutes: int, max_lines: int) -> None:
        """Write the system log of the last `since_minutes` (at most `max_lines` lines) as text to `destination`."""
        ...

    async def bugreport(self, destination: Path) -> None:
        """Write a diagnostic archive to `destination`."""
        ...


@runtime_checkable
class ScriptRunner(Protocol):
    async def run_script(
        self,
        script: str,
        *,
        interpreter: str,
        timeout: float,  # noqa: ASYNC109  (the script's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult: ...


@runtime_checkable
class CommandRunner(Protocol):
    """Runs an operator-defined argv (custom actions); a non-zero exit is returned, not raised."""

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109  (the action's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult: ...
