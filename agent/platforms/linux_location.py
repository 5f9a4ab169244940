"""Location on Linux: gpsd's last fix, read with gpspipe."""

from datetime import UTC, datetime

from agent.platforms.linux_tools import LinuxTools
from agent.platforms.location import LocationFix, parse_gpsd_reports

GPSD_REPORTS = 20
"""gpsd sends VERSION, DEVICES and WATCH, then a TPV (and a SKY) about once a second: 20 lines hold several TPVs."""
GPSD_WAIT_S = 30
"""gpspipe stops after this long even if gpsd sent fewer reports (a GPS without a fix may send none)."""
GPSD_OUTPUT_LIMIT = 256 * 1024
"""SKY reports list every satellite; 20 lines stay well under this, so the first TPV is never cut off."""


class LinuxLocation(LinuxTools):
    """Location from gpsd, the daemon GPS receivers on Linux are read through.

    GeoClue is not used: it serves desktop applications it has authorised through a session agent, and without a GPS
    its Wi-Fi and IP locations come from a web service (Mozilla's closed in 2024), not from the device.
    """

    async def last_location(self) -> LocationFix:
        """`gpspipe -w -n 20 -x 30`: the first TPV report with a 2D or 3D fix; none is `no location fix`."""
        result = await self.tool(
            "gpspipe",
            "-w",
            "-n",
            str(GPSD_REPORTS),
            "-x",
            str(GPSD_WAIT_S),
            limit_s=GPSD_WAIT_S + self.tool_timeout,
            output_limit=GPSD_OUTPUT_LIMIT,
        )
        return parse_gpsd_reports(result.stdout_tail, datetime.now(UTC))
