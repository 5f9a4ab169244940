"""An Android device attached to this host, driven over adb with the tools every Android build ships."""

import re

from agent.android.inventory import android_inventory
from agent.errors import ToolFailed
from agent.platforms.android_apps import AndroidApps
from agent.platforms.android_diagnostics import AndroidDiagnostics
from agent.platforms.android_kiosk import AndroidKiosk
from agent.platforms.android_lock import AndroidLockScreen
from agent.platforms.contract import DeviceSurvey
from agent.platforms.location import LocationFix, parse_dumpsys_location, parse_uptime
from shared.arguments.system import AudioStream, LocationMode, Rotation

STREAM_TYPES = {
    AudioStream.VOICE_CALL: 0,
    AudioStream.SYSTEM: 1,
    AudioStream.RING: 2,
    AudioStream.MUSIC: 3,
    AudioStream.ALARM: 4,
    AudioStream.NOTIFICATION: 5,
}
"""AudioManager.STREAM_* constants."""

USER_ROTATIONS = {
    Rotation.PORTRAIT: 0,
    Rotation.LANDSCAPE: 1,
    Rotation.REVERSE_PORTRAIT: 2,
    Rotation.REVERSE_LANDSCAPE: 3,
}
"""Surface.ROTATION_0, _90, _180 and _270, the values of the `user_rotation` setting."""

NEVER_MS = 2_147_483_647
"""Android has no "never" screen-off timeout; Integer.MAX_VALUE milliseconds (24.8 days) is what launchers use."""

NOTIFICATION_TAG = "tether"

BLUETOOTH_MANAGER_SDK = 33
"""`cmd bluetooth_manager` arrived in Android 13."""

_VOLUME_RANGE = re.compile(r"in range \[(?P<low>\d+)\.\.(?P<high>\d+)\]")


class AndroidPlatform(AndroidApps, AndroidDiagnostics, AndroidKiosk, AndroidLockScreen):
    """One Android device, `adb -s SERIAL`; every process goes through `agent.process`.

    Commands assume Android 11, 12 or 13 where noted; on older builds the tool fails and so does the command, with
    the device's own error as the reason (Bluetooth and app notifications check the API level first and say so).
    Not implemented, so not advertised: BEEP_DEVICE (no shell tool plays a tone), install by package name (adb has
    no store), Wi-Fi networks, Ethernet and static IP, language, certificates and system updates (each needs root,
    a device-owner app or user confirmation on the device).
    """

    async def boot_id(self) -> str:
        """`adb -s S shell cat /proc/sys/kernel/random/boot_id`: changes exactly when the device reboots."""
        boot_id = (await self.read_text("cat", "/proc/sys/kernel/random/boot_id")).strip()
        if not boot_id:
            raise ToolFailed(f"{self.serial} reported an empty boot id")
        return boot_id

    async def survey(self) -> DeviceSurvey:
        """`adb -s S shell getprop` and `adb -s S shell dumpsys battery`, as when the device was attached."""
        inventory, time_zone = await android_inventory(self)
        return DeviceSurvey(inventory=inventory, time_zone=time_zone)

    async def reboot(self) -> None:
        """`adb -s S reboot`: returns once the device has started to go down; it then leaves `adb devices`."""
        await self.adb("reboot")

    async def shut_down(self) -> None:
        """`adb -s S shell reboot -p`: power off."""
        await self.shell("reboot", "-p")

    async def set_wifi(self, enabled: bool) -> None:
        """`adb -s S shell svc wifi enable|disable`; an error it prints with exit 0 fails the command."""
        await self.shell_ok("svc", "wifi", "enable" if enabled else "disable")

    async def set_bluetooth(self, enabled: bool) -> None:
        """`adb -s S shell cmd bluetooth_manager enable|disable`, which Android 13 (API 33) brought.

        `svc bluetooth` is gone in 13 and older builds have no shell command for it, so an older device fails with
        its API level (one `getprop ro.build.version.sdk`) rather than with whatever `cmd` prints there.
        """
        await self.require_sdk(BLUETOOTH_MANAGER_SDK, "13", "cmd bluetooth_manager")
        await self.shell_ok("cmd", "bluetooth_manager", "enable" if enabled else "disable")

    async def set_brightness(self, percent: int) -> None:
        """`settings put system screen_brightness_mode 0` (manual), then `screen_brightness` 0-255 from `percent`."""
        await self.put_setting("system", "screen_brightness_mode", "0")
        await self.put_setting("system", "screen_brightness", str(round(percent * 255 / 100)))

    async def set_screen_off_timeout(self, seconds: int) -> None:
        """`adb -s S shell settings put system screen_off_timeout MS`; 0 (never) becomes NEVER_MS."""
        await self.put_setting("system", "screen_off_timeout", str(seconds * 1000 or NEVER_MS))

    async def set_rotation(self, rotation: Rotation) -> None:
        """`settings put system accelerometer_rotation 1` for AUTO; else `0` and `user_rotation 0-3`."""
        if rotation is Rotation.AUTO:
            await self.put_setting("system", "accelerometer_rotation", "1")
            return
        await self.put_setting("system", "accelerometer_rotation", "0")
        await self.put_setting("system", "user_rotation", str(USER_ROTATIONS[rotation]))

    async def set_stream_volume(self, stream: AudioStream, percent: int) -> None:
        """`cmd media_session volume --stream N --get` for the stream's index range, then `--set INDEX`.

        Each stream has its own number of steps (music 15 or 25, ring 7, ...), so `percent` is scaled to the range
        the device reports (`volume is 5 in range [0..15]`).
        """
        number = str(STREAM_TYPES[stream])
        report = await self.read_text("cmd", "media_session", "volume", "--stream", number, "--get")
        match = _VOLUME_RANGE.search(report)
        if match is None:
            raise ToolFailed(f"{self.serial} did not report the range of the {stream} stream: {report.strip()!r}")
        low, high = int(match["low"]), int(match["high"])
        index = low + round((high - low) * percent / 100)
        await self.shell("cmd", "media_session", "volume", "--stream", number, "--set", str(index))

    async def set_time_zone(self, zone: str) -> None:
        """`adb -s S shell cmd alarm set-timezone ZONE` (Android 12+), with an IANA zone already validated."""
        await self.shell_ok("cmd", "alarm", "set-timezone", zone)

    async def set_location_mode(self, mode: LocationMode) -> None:
        """`adb -s S shell cmd location set-location-enabled true|false` (Android 11+): GPS and network location."""
        await self.shell_ok("cmd", "location", "set-location-enabled", "true" if mode is LocationMode.ON else "false")

    async def last_location(self) -> LocationFix:
        """`adb -s S shell dumpsys location`, then `cat /proc/uptime` to age the freshest fix it lists.

        The fix's `et=` is the device's elapsedRealtime when it was taken, the clock /proc/uptime reads (suspend
        included), so the age does not depend on the device's wall clock being right.
        """
        dump = await self.read_text("dumpsys", "location")
        uptime = parse_uptime(await self.read_text("cat", "/proc/uptime"))
        return parse_dumpsys_location(dump, uptime)

    async def notify(self, title: str, message: str) -> None:
        """`adb -s S shell cmd notification post -S bigtext -t TITLE tether MESSAGE`, quoted for the device's shell.

        The tag is always `tether`, so a new notification replaces the previous one instead of piling up. A refused
        post exits non-zero, or prints its exception on standard error with exit 0 on some builds; standard output is
        not searched, since the device may echo the message, and the message may contain any word.
        """
        await self.shell_ok(
            "cmd", "notification", "post", "-S", "bigtext", "-t", title, NOTIFICATION_TAG, message, stderr_only=True
        )
