"""What an Android device says about itself in its announcement, from `getprop` and `dumpsys battery`."""

import logging
import re
from typing import Any

from agent.errors import HandlerError
from agent.platforms.android_adb import AdbTools
from shared.schedule import valid_zone

log = logging.getLogger(__name__)

_PROP_LINE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")
_BATTERY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z ]*):\s*(?P<value>.*?)\s*$")

BATTERY_STATUS = {"1": "unknown", "2": "charging", "3": "discharging", "4": "not_charging", "5": "full"}
"""BatteryManager.BATTERY_STATUS_* as `dumpsys battery` prints them."""
POWER_SOURCES = {"AC powered": "ac", "USB powered": "usb", "Wireless powered": "wireless", "Dock powered": "dock"}


def parse_getprop(text: str) -> dict[str, str]:
    """`[ro.product.model]: [Pixel 7]` lines as a dict; multi-line values, which no property used here has, are lost."""
    props = {}
    for line in text.splitlines():
        match = _PROP_LINE.match(line.strip())
        if match:
            props[match["key"]] = match["value"]
    return props


def parse_battery(text: str) -> dict[str, Any]:
    """Level (percent of scale), status and the power sources plugged in, from `dumpsys battery`."""
    fields = {}
    for line in text.splitlines():
        match = _BATTERY_LINE.match(line)
        if match:
            fields[match["key"]] = match["value"]
    battery: dict[str, Any] = {}
    try:
        level, scale = int(fields["level"]), int(fields.get("scale", "100")) or 100
        battery["level"] = round(level * 100 / scale)
    except (KeyError, ValueError):
        pass
    if "status" in fields:
        battery["status"] = BATTERY_STATUS.get(fields["status"], "unknown")
    battery["plugged"] = sorted(source for key, source in POWER_SOURCES.items() if fields.get(key) == "true")
    return battery


def valid_time_zone(name: str | None) -> str | None:
    """`name` if it is an IANA zone this host knows, else None (an announcement refuses unknown zones)."""
    return name if name and valid_zone(name) else None


def _sdk(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def android_inventory(platform: AdbTools) -> tuple[dict[str, Any], str | None]:
    """The inventory and IANA time zone of the device: one `getprop` call and one `dumpsys battery` call.

    A getprop failure propagates (a device that cannot answer it cannot be managed); a battery failure only leaves
    the battery out, since some devices (TV boxes, boards) have none to report.
    """
    props = parse_getprop(await platform.read_text("getprop"))
    inventory: dict[str, Any] = {
        "serial": props.get("ro.serialno") or platform.serial,
        "adb_serial": platform.serial,
        "manufacturer": props.get("ro.product.manufacturer"),
        "model": props.get("ro.product.model"),
        "os": {
            "name": "Android",
            "version": props.get("ro.build.version.release"),
            "sdk": _sdk(props.get("ro.build.version.sdk")),
        },
    }
    try:
        inventory["battery"] = parse_battery(await platform.read_text("dumpsys", "battery"))
    except HandlerError as err:
        log.info("%s: no battery information: %s", platform.serial, err)
    return inventory, valid_time_zone(props.get("persist.sys.timezone"))
