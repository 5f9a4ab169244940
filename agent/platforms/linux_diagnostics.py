"""Linux screenshots, logs and bug reports, for the artifact operation types."""

import asyncio
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

from agent import process
from agent.errors import HandlerError, ToolNotFound
from agent.inventory import linux_inventory
from agent.platforms.linux_tools import LinuxTools
from agent.platforms.unit_journal import AgentJournal, write_journal

SCREENSHOT_TOOLS: tuple[tuple[str, ...], ...] = (("grim",), ("gnome-screenshot", "-f"), ("import", "-window", "root"))
"""Tried in order: Wayland (grim), GNOME, then X11 through ImageMagick; each takes the output path last."""
BUGREPORT_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("journal.txt", ("journalctl", "--no-pager", "-o", "short-iso", "--since", "-1day", "-n", "50000")),
    ("kernel.txt", ("journalctl", "--no-pager", "-k", "-b", "-o", "short-iso", "-n", "20000")),
    ("failed-units.txt", ("systemctl", "--failed", "--no-pager")),
    ("disks.txt", ("df", "-h")),
    ("addresses.txt", ("ip", "address")),
    ("processes.txt", ("ps", "aux")),
)
SECTION_LIMIT = 8 * 1024 * 1024


class LinuxDiagnostics(LinuxTools, AgentJournal):
    async def capture_screenshot(self, destination: Path) -> None:
        for argv in SCREENSHOT_TOOLS:
            if shutil.which(argv[0]):
                await self.tool(*argv, str(destination))
                return
        tried = ", ".join(argv[0] for argv in SCREENSHOT_TOOLS)
        raise ToolNotFound(f"no screenshot tool found on PATH (tried {tried})")

    async def collect_logs(self, destination: Path, *, since_minutes: int, max_lines: int) -> None:
        await write_journal(destination, since_minutes=since_minutes, max_lines=max_lines, timeout=self.tool_timeout)

    async def bugreport(self, destination: Path) -> None:
        """A tar.gz of the journal, kernel log, failed units, disks, addresses, processes and the inventory.

        A section whose tool is missing or fails is recorded as such instead of failing the whole report.
        """
        sections: dict[str, bytes] = {}
        for name, argv in BUGREPORT_SECTIONS:
            try:
                outcome = await process.run(argv, timeout=self.tool_timeout, output_limit=SECTION_LIMIT)
                text = outcome.stdout_tail + (f"\n[{outcome.exit_description}]\n" if outcome.returncode else "")
            except HandlerError as err:
                text = f"[not collected: {err}]\n"
            sections[name] = text.encode()
        sections["inventory.json"] = json.dumps(linux_inventory(), indent=2).encode()
        await asyncio.to_thread(_write_archive, destination, sections)


def _write_archive(destination: Path, sections: dict[str, bytes]) -> None:
    with tarfile.open(destination, "w:gz") as archive:
        for name, data in sections.items():
            member = tarfile.TarInfo(f"bugreport/{name}")
            member.size = len(data)
            member.mtime = int(time.time())
            archive.addfile(member, io.BytesIO(data))
