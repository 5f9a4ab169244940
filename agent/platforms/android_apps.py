"""Android apps over adb: install from an .apk, uninstall, list with versions, and per-app controls."""

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path

from agent.errors import HandlerError, ToolFailed, UnsupportedOperation
from agent.platforms.android_adb import AdbTools, in_user_section
from agent.process import last_line
from shared.arguments.apps import AppState, SoftwareType

INSTALL_TIMEOUT_S = 600.0
"""`adb install` copies the whole .apk and waits for dexopt; large apps take minutes over USB 2."""

APP_SUFFIXES = (".apk", ".apex")
"""What `adb install` accepts; it refuses any other file name."""

_PACKAGE_LINE = re.compile(r"^package:(?P<name>\S+)(?:\s+versionCode:(?P<version>\S+))?")

_APP_STATE_STEPS = {
    # disable-user, not disable: the shell user may disable apps for the user, not system-wide components.
    AppState.ENABLED: (("enable", "new state: enabled"), ("unsuspend", "new suspended state: false")),
    AppState.DISABLED: (("disable-user", "new state: disabled-user"),),
    AppState.SUSPENDED: (("suspend", "new suspended state: true"),),
}
"""`pm` verb per state, and the state `pm` reads back and prints after setting it (`Package P new state: enabled`).
ENABLED undoes every state set here (DISABLED and SUSPENDED). HIDDEN has no entry: `pm hide` needs root."""

POST_NOTIFICATIONS = "android.permission.POST_NOTIFICATIONS"
POST_NOTIFICATIONS_SDK = 33
"""Android 13 made posting notifications a runtime permission; before it, no shell command switches them per app."""

_PERMISSION_USER = re.compile(r"^\s*User (?P<id>\d+):")
_POST_NOTIFICATIONS_GRANT = re.compile(rf"^\s*{re.escape(POST_NOTIFICATIONS)}: granted=(?P<granted>true|false)")


def notifications_granted(dump: str, user: str = "0") -> bool | None:
    """Whether `dumpsys package P` shows POST_NOTIFICATIONS granted to `user` (pm's default user 0); None if not
    listed."""
    grant = in_user_section(dump, user, _PERMISSION_USER, _POST_NOTIFICATIONS_GRANT)
    return None if grant is None else grant["granted"] == "true"


def parse_package_list(text: str) -> list[dict[str, str]]:
    """`pm list packages --show-versioncode` lines (`package:com.example versionCode:42`), sorted by name."""
    packages = []
    for line in text.splitlines():
        match = _PACKAGE_LINE.match(line.strip())
        if match:
            packages.append({"name": match["name"], "version": match["version"] or ""})
    return sorted(packages, key=lambda package: package["name"])


class AndroidApps(AdbTools):
    async def install_app_file(self, path: Path) -> None:
        """`adb -s S install -r PATH`: install or replace (-r) the app, keeping its data.

        adb refuses a file whose name does not end in .apk, so a download named otherwise is linked under such a name.
        """
        if path.suffix.lower() in APP_SUFFIXES:
            await self._install(path)
            return
        alias = path.with_name(path.name + ".apk")
        try:
            await asyncio.to_thread(os.link, path, alias)
        except OSError as err:
            raise HandlerError(f"cannot name {path} as an .apk for adb: {err.strerror or err}") from err
        try:
            await self._install(alias)
        finally:
            alias.unlink(missing_ok=True)

    async def _install(self, path: Path) -> None:
        result = await self.adb("install", "-r", str(path), limit_s=max(self.tool_timeout, INSTALL_TIMEOUT_S))
        # adb before 1.0.36 printed `Failure [INSTALL_FAILED_...]` and still exited 0.
        if "Failure" in result.stdout_tail:
            raise ToolFailed(
                f"adb install on {self.serial} failed: {last_line(result.stdout_tail)}", result=result.summary()
            )

    async def remove_packages(self, names: Sequence[str], software_type: SoftwareType | None = None) -> None:
        """`adb -s S uninstall PACKAGE` for each name, in order; the first failure stops the rest."""
        if software_type not in (None, SoftwareType.APK):
            raise UnsupportedOperation(f"software type '{software_type}' is not supported on android, only apk")
        for name in names:
            result = await self.adb("uninstall", name)
            if "Failure" in result.stdout_tail:
                raise ToolFailed(
                    f"adb uninstall {name} on {self.serial} failed: {last_line(result.stdout_tail)}",
                    result=result.summary(),
                )

    async def list_packages(self) -> list[dict[str, str]]:
        """`adb -s S shell pm list packages --show-versioncode`: every app, the version being its versionCode."""
        return parse_package_list(await self.read_text("pm", "list", "packages", "--show-versioncode"))

    async def clear_app_data(self, package: str) -> None:
        """`adb -s S shell pm clear PACKAGE`: delete the app's data and cache, as Settings > Storage > Clear does."""
        await self.shell_ok("pm", "clear", package)

    async def set_app_permission(self, package: str, permission: str, granted: bool) -> None:
        """`adb -s S shell pm grant|revoke PACKAGE PERMISSION`: runtime (dangerous) permissions only."""
        await self.shell_ok("pm", "grant" if granted else "revoke", package, permission)

    async def set_app_state(self, package: str, state: AppState) -> None:
        """`adb -s S shell pm enable|disable-user|suspend|unsuspend PACKAGE`, see _APP_STATE_STEPS; each must print
        the state it was to set, which `pm` reads back from the package manager."""
        steps = _APP_STATE_STEPS.get(state)
        if steps is None:
            raise UnsupportedOperation(
                f"state '{state}' is not supported on android: pm hide needs root or a device-owner app"
                " ('disabled' takes an app off the launcher)"
            )
        for verb, expected in steps:
            result = await self.shell_ok("pm", verb, package)
            if expected not in result.stdout_tail:
                printed = last_line(result.stdout_tail) or "nothing"
                raise ToolFailed(f"pm {verb} {package} on {self.serial} printed {printed!r}, not {expected!r}")

    async def set_app_notifications(self, package: str, enabled: bool) -> None:
        """`adb -s S shell pm grant|revoke PACKAGE android.permission.POST_NOTIFICATIONS` (Android 13+, checked with
        `getprop ro.build.version.sdk` first), then `dumpsys package PACKAGE` must show the grant so for user 0."""
        await self.require_sdk(POST_NOTIFICATIONS_SDK, "13", "switching an app's notifications")
        verb = "grant" if enabled else "revoke"
        await self.shell_ok("pm", verb, package, POST_NOTIFICATIONS)
        granted = notifications_granted(await self.read_text("dumpsys", "package", package))
        if granted is None:
            raise ToolFailed(f"dumpsys package {package} on {self.serial} lists no POST_NOTIFICATIONS grant for user 0")
        if granted is not enabled:
            raise ToolFailed(f"pm {verb} {package} on {self.serial} left it granted={str(granted).lower()}")
