"""Where a device is: its last location fix, read from `dumpsys location` (Android) or gpsd's reports (Linux)."""

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from agent.errors import HandlerError, ToolFailed

NO_FIX = "no location fix"


@dataclass(frozen=True, slots=True)
class LocationFix:
    latitude: float
    longitude: float
    accuracy_m: float | None
    """The horizontal accuracy the source reports; None when it reports none."""
    provider: str
    """Android's provider (`gps`, `fused`, `network`...) or `gpsd`."""
    age_s: float | None
    """Seconds since the fix was taken; None when the source gives no time for it."""

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def _on_earth(latitude: float, longitude: float) -> bool:
    return -90 <= latitude <= 90 and -180 <= longitude <= 180


# --- Android: `dumpsys location` -----------------------------------------------------------------------------------

_ANDROID_FIX = re.compile(
    r"Location\[(?P<provider>[A-Za-z][\w.-]*) (?P<latitude>-?\d+\.\d+),(?P<longitude>-?\d+\.\d+)(?P<fields>[^\]]*)"
)
"""Location.toString(): `Location[gps 52.520008,13.404954 hAcc=5.0 et=+2h3m4s567ms alt=34.0 ...]`, the coordinates
always with a dot (Locale.ROOT); the fields up to the first `]` (extras, later, may hold brackets of their own)."""
_ANDROID_ACCURACY = re.compile(r"(?:^|\s)h?[aA]cc=(?P<metres>\d+(?:\.\d+)?)(?=\s|$)")
"""`hAcc=5.0` (Android 8+; `hAcc=???` or no field without an accuracy) or `acc=5` (Android 7 and older)."""
_ANDROID_ELAPSED = re.compile(r"(?:^|\s)et=(?P<duration>\S+)")
_DURATION = re.compile(r"\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")
"""TimeUtils.formatDuration of milliseconds since boot: `+1d2h3m4s567ms`, each part present only when non-zero."""


def _boot_seconds(duration: str) -> float | None:
    """Seconds since boot from an `et=` value; None for `?!?` (no time) or anything else unexpected."""
    if duration == "0":
        return 0.0
    match = _DURATION.fullmatch(duration)
    if match is None or duration == "+":
        return None
    days, hours, minutes, seconds, millis = (int(part or 0) for part in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds + millis / 1000


def parse_dumpsys_location(dump: str, uptime_s: float) -> LocationFix:
    """The freshest fine location in `dumpsys location`, its age measured against `uptime_s` (/proc/uptime).

    Android 12+ prints `last location=Location[...]` per provider (gps, network, fused, passive), Android 11 and
    older a `Last Known Locations:` section of `gps: Location[...]` lines. Coarse locations (`last coarse location=`,
    the `Last Known Locations Coarse Intervals:` section) are deliberately blurred and skipped. Raise HandlerError
    NO_FIX if there is no location, and ToolFailed if there are only locations this cannot read (coordinates
    written with a comma, no readable elapsed time `et=`, a position off the globe).
    """
    fixes: list[tuple[float, LocationFix]] = []
    unread: list[str] = []
    coarse_section: int | None = None  # the indentation of a coarse section's heading while inside that section
    for line in dump.splitlines():
        indent = len(line) - len(line.lstrip())
        if coarse_section is not None and indent <= coarse_section:
            coarse_section = None
        if "coarse" in line.lower():
            if "Location[" not in line:
                coarse_section = indent
            continue
        if "Location[" not in line or coarse_section is not None:
            continue
        found = list(_ANDROID_FIX.finditer(line))
        if not found:
            unread.append(line.strip())
        for match in found:
            latitude, longitude = float(match["latitude"]), float(match["longitude"])
            elapsed = _ANDROID_ELAPSED.search(match["fields"])
            taken = None if elapsed is None else _boot_seconds(elapsed["duration"])
            if taken is None or not _on_earth(latitude, longitude):
                unread.append(match[0])
                continue
            accuracy = _ANDROID_ACCURACY.search(match["fields"])
            fix = LocationFix(
                latitude=latitude,
                longitude=longitude,
                accuracy_m=None if accuracy is None else float(accuracy["metres"]),
                provider=match["provider"],
                age_s=round(max(0.0, uptime_s - taken), 1),
            )
            fixes.append((taken, fix))
    if fixes:
        # The latest taken; on a tie the first printed.
        return max(fixes, key=lambda pair: pair[0])[1]
    if unread:
        raise ToolFailed(f"dumpsys location printed a location that cannot be read: {unread[0][:200]!r}")
    raise HandlerError(NO_FIX)


def parse_uptime(text: str) -> float:
    """Seconds since boot, suspend included, from /proc/uptime (`12345.67 23456.78`): Android's elapsedRealtime."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise ToolFailed(f"cannot read the uptime from {text.strip()[:100]!r}") from None


# --- Linux: gpsd's JSON reports (`gpspipe -w`) -------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else, an integer no float holds included."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _gpsd_accuracy(report: dict[str, Any]) -> float | None:
    """`eph` (gpsd 3.20+), else the larger of `epx` and `epy`, the longitude and latitude errors; metres, 95 %."""
    eph = _number(report.get("eph"))
    if eph is not None:
        return eph
    epx, epy = _number(report.get("epx")), _number(report.get("epy"))
    return max(epx, epy) if epx is not None and epy is not None else None


def _gpsd_age(report: dict[str, Any], now: datetime) -> float | None:
    stamp = report.get("time")
    if not isinstance(stamp, str):
        return None
    try:
        taken = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise ToolFailed(f"gpsd reported a fix at an unreadable time: {stamp[:64]!r}") from None
    if taken.tzinfo is None:
        return None
    return round(max(0.0, (now - taken).total_seconds()), 1)


def parse_gpsd_reports(output: str, now: datetime) -> LocationFix:
    """The first TPV report with a 2D or 3D fix (`mode` 2 or 3) in `gpspipe -w` output, aged against `now` (UTC).

    Lines that are not JSON objects are skipped: gpspipe's `-x` may cut the last one short. A TPV with a fix but
    without numeric `lat` and `lon` raises ToolFailed; no such TPV at all raises HandlerError NO_FIX.
    """
    for line in output.splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if not isinstance(report, dict) or report.get("class") != "TPV":
            continue
        mode = report.get("mode")
        if isinstance(mode, bool) or not isinstance(mode, int) or mode < 2:
            continue
        latitude, longitude = _number(report.get("lat")), _number(report.get("lon"))
        if latitude is None or longitude is None or not _on_earth(latitude, longitude):
            raise ToolFailed(f"gpsd reported a fix without a valid position: {line[:200]!r}")
        return LocationFix(
            latitude=latitude,
            longitude=longitude,
            accuracy_m=_gpsd_accuracy(report),
            provider="gpsd",
            age_s=_gpsd_age(report, now),
        )
    raise HandlerError(NO_FIX)
