"""What handlers may ask of a platform, one runtime-checkable protocol per capability.

A handler names the protocol it `needs`; a platform (Linux, an Android device over adb) has a capability exactly when
it implements the protocol's methods, so the capabilities an agent advertises follow from its platform classes.
Methods raise agent.errors.HandlerError subclasses (ToolNotFound, ToolFailed, ToolTimeout) with readable messages.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agent.config import RemoteConnectionSettings
from agent.platforms.location import LocationFix
from agent.process import ProcessResult
from agent.reachability import ReachabilityCheck
from shared.arguments.apps import AppState, PackageSpec, SoftwareType
from shared.arguments.lockscreen import CredentialKind
from shared.arguments.network import ApnOverride, EthernetSettings, StaticIpSettings, WifiNetwork
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
class DeviceRemover(Protocol):
    async def remove_device(self, delay_s: float) -> tuple[str, list[Path]]:
        """Stop and disable the agent's service `delay_s` from now, then delete its credentials and state; return the
        unit and the paths it will delete."""
        ...


@dataclass(frozen=True, slots=True)
class DeviceSurvey:
    """What a device says about itself now: its inventory and the zone its operating system is set to (None if
    unknown)."""

    inventory: dict[str, Any]
    time_zone: str | None


@runtime_checkable
class Surveyor(Protocol):
    async def survey(self) -> DeviceSurvey:
        """Read the device's inventory and time zone afresh."""
        ...


@runtime_checkable
class SessionLocker(Protocol):
    async def lock_sessions(self) -> dict[str, Any]:
        """Lock the device and return what LOCK's result says beyond `locked: true` (Linux: the sessions and their
        read-back lock state; Android: the screen and the credential); raise a HandlerError when it is not locked."""
        ...


@runtime_checkable
class LockScreenCredential(Protocol):
    """The lock screen's PIN or password, changed by whoever knows the current one.

    Implementations keep both credentials out of errors, results and logs.
    """

    async def clear_lock_credential(self, current: str) -> bool:
        """Remove the PIN, pattern or password `current`; return whether one was set (False: there was none)."""
        ...

    async def set_lock_credential(self, kind: CredentialKind, new: str, current: str | None) -> None: ...


@runtime_checkable
class WifiRadio(Protocol):
    async def set_wifi(self, enabled: bool) -> None: ...


@runtime_checkable
class WifiNetworks(Protocol):
    """Saved Wi-Fi networks. Implementations keep the password out of errors, results and logs."""

    async def add_wifi_network(self, network: WifiNetwork) -> dict[str, Any]:
        """Save `network`; join it now where that is safe: `joined`, and `device` or `not_joined` (why not)."""
        ...

    async def remove_wifi_network(self, ssid: str) -> None:
        """Raise a HandlerError naming `ssid` when no Wi-Fi network of that name is saved."""
        ...


@runtime_checkable
class WifiJoinPolicy(Protocol):
    """Whether the device may join networks that are not saved on it."""

    async def use_only_saved_wifi(self, enabled: bool) -> dict[str, Any]:
        """Return, for the result, what enforces the policy now and whether it is in force."""
        ...


@runtime_checkable
class MobileApns(Protocol):
    """Mobile-data profiles. Implementations keep the APN password out of errors, results and logs."""

    async def add_apn_override(self, override: ApnOverride) -> None: ...


@runtime_checkable
class BluetoothRadio(Protocol):
    async def set_bluetooth(self, enabled: bool) -> None: ...


@runtime_checkable
class WiredNetwork(Protocol):
    """Wired addressing, kept only if `still_reachable` says the broker can be reached after the change; otherwise
    the change is rolled back and a HandlerError raised."""

    async def configure_ethernet(self, settings: EthernetSettings, still_reachable: ReachabilityCheck) -> None: ...
    async def set_static_ip(self, settings: StaticIpSettings, still_reachable: ReachabilityCheck) -> None: ...


@runtime_checkable
class Clock(Protocol):
    async def set_time_zone(self, zone: str) -> None: ...


@runtime_checkable
class Locale(Protocol):
    async def set_language(self, locale: str) -> dict[str, Any]:
        """Make `locale` the system's language; return what the result says beyond `language`."""
        ...


@runtime_checkable
class Display(Protocol):
    async def set_brightness(self, percent: int) -> None: ...
    async def set_screen_off_timeout(self, seconds: int) -> dict[str, Any] | None:
        """Return None, or what the result says beyond `timeout_s` (Linux: the mechanism and the sessions)."""
        ...


@runtime_checkable
class RotationControl(Protocol):
    async def set_rotation(self, rotation: Rotation) -> None: ...


@runtime_checkable
class Audio(Protocol):
    async def set_stream_volume(self, stream: AudioStream, percent: int) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, title: str, message: str) -> dict[str, Any] | None:
        """Return None, or what the result says beyond the title and message (Linux: whom it reached)."""
        ...


@runtime_checkable
class Beeper(Protocol):
    async def beep(self, seconds: float) -> None: ...


@runtime_checkable
class Attention(Notifier, Beeper, Protocol):
    """Notifier and Beeper. Android can notify but not beep over adb, so a handler should need only the one it uses."""


@runtime_checkable
class LostModeDevice(SessionLocker, Notifier, Protocol):
    """What ENABLE_LOST_MODE needs: lock the device and show whoever finds it a message."""


@runtime_checkable
class Wallpaper(Protocol):
    async def set_wallpaper(self, image: Path) -> dict[str, Any]:
        """Show the image at `image` (a downloaded file the platform may move) as the wallpaper; return what was
        set where."""
        ...


@runtime_checkable
class Lockdown(Protocol):
    async def set_lockdown(self, enabled: bool, message: str) -> dict[str, Any]:
        """Refuse (or again allow) new logins, locking the sessions already open; return what was done."""
        ...


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
class AppNotifications(Protocol):
    async def set_app_notifications(self, package: str, enabled: bool) -> None: ...


@runtime_checkable
class AppConfiguration(Protocol):
    """Managed app configuration (Linux): a file the app reads, replaced whole."""

    async def apply_app_config(self, app: str, document: bytes, restart_unit: str | None) -> dict[str, Any]:
        """Write `document` as `app`'s configuration and restart `restart_unit` if it runs; return what was done."""
        ...


@runtime_checkable
class RemoteTunnel(Protocol):
    """A reverse SSH tunnel to the configured bastion (Linux), open for a while or closed."""

    async def open_remote_connection(
        self, bastion: RemoteConnectionSettings, remote_port: int, duration_s: int
    ) -> dict[str, Any]:
        """Open (or reopen) the tunnel forwarding the bastion's `remote_port` here, for at most `duration_s`."""
        ...

    async def close_remote_connection(self) -> dict[str, Any]: ...


@runtime_checkable
class Location(Protocol):
    async def set_location_mode(self, mode: LocationMode) -> None: ...


@runtime_checkable
class Locator(Protocol):
    async def last_location(self) -> LocationFix:
        """The device's most recent location fix; HandlerError `no location fix` when it has none."""
        ...


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


@dataclass(frozen=True, slots=True)
class PendingUpdates:
    """The upgrades a package manager has waiting: `{name, current, available}` by name."""

    manager: str
    packages: list[dict[str, str | None]]
    security: int | None
    """How many come from a security repository, where the tool says so cheaply (apt); else None."""


@runtime_checkable
class OsUpdateCheck(Protocol):
    async def pending_updates(self) -> PendingUpdates:
        """Refresh the package lists and read which upgrades are waiting; nothing is installed."""
        ...


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
class AgentLog(Protocol):
    async def collect_agent_log(self, destination: Path, *, since_minutes: int, max_lines: int) -> None:
        """Write the agent's own log of the last `since_minutes` (at most `max_lines` lines) as text to
        `destination`."""
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


@runtime_checkable
class KioskSession(Protocol):
    """A kiosk session (Linux): one app full screen in a kiosk compositor, started at boot instead of a login."""

    async def start_kiosk(self, app: Sequence[str], user: str) -> dict[str, Any]:
        """Run `app` as `user` in the kiosk session from now on and at every boot; return what was done."""
        ...

    async def stop_kiosk(self) -> dict[str, Any]:
        """Stop the kiosk session and keep it from starting at boot; return what was done."""
        ...


@runtime_checkable
class HomeScreen(Protocol):
    """The activity the HOME intent opens (Android): the launcher, or an app made the home screen."""

    async def home_activity(self) -> str | None:
        """The component HOME resolves to now, or None when the user would be asked to choose."""
        ...

    async def set_home_activity(self, component: str) -> None:
        """Make `component` the home activity and bring it to the front."""
        ...


@runtime_checkable
class AppSuspension(Protocol):
    """Suspending apps (Android): a suspended app stays installed but cannot be opened until unsuspended."""

    async def launchable_packages(self) -> list[str]:
        """The packages with a launcher icon, sorted."""
        ...

    async def set_suspended(self, package: str, suspended: bool) -> None: ...


@runtime_checkable
class AndroidKiosk(HomeScreen, AppSuspension, Protocol):
    """A home-screen kiosk whose allowlist is enforced by suspending the other apps."""
