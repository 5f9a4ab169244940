"""Android apps over adb: install from an .apk, uninstall, list with versions, and per-app controls."""

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path

from agent.errors import HandlerError, ToolFailed, UnsupportedOperation
from agent.platforms.android_adb import AdbTools
from agent.process import last_line
from shared.arguments.apps import AppState, SoftwareType

INSTALL_TIMEOUT_S = 600.0
"""`adb install` copies the whole .apk and waits for dexopt; large apps take minutes over USB 2."""

APP_SUFFIXES = (".apk", ".apex")
"""What `adb install` accepts; it refuses any other file name."""

_PACKAGE_LINE = re.compile(r"^package:(?P<name>\S+)(?:\s+versionCode:(?P<version>\S+))?")

_APP_STATE_VERBS = {
    # disable-user, not disable: the shell user may disable apps for the user, not system-wide components.
    AppState.ENABLED: ("enable", "unsuspend"),
    AppState.DISABLED: ("disable-user",),
    AppState.HIDDEN: ("hide",),
    AppState.SUSPENDED: ("suspend",),
}
"""`pm` verbs per state. ENABLED undoes DISABLED and SUSPENDED, which the shell user may both set (Android 9+). It does
not run `pm unhide`: hide and unhide need root on most builds, and a failing unhide would fail every ENABLED."""


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
        """`adb -s S shell pm enable|disable-user|hide|unhide|suspend|unsuspend PACKAGE`, see _APP_STATE_VERBS."""
        for verb in _APP_STATE_VERBS[state]:
            await self.shell_ok("pm", verb, package)
