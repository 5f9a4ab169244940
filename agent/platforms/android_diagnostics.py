"""Android screenshots, logs, bug reports and shell scripts over adb."""

import asyncio
import collections
import contextlib
import time
from pathlib import Path

from agent import process
from agent.errors import InvalidArguments, ToolFailed
from agent.platforms.android_adb import AdbTools
from agent.platforms.unit_journal import AgentJournal
from agent.process import ProcessResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEVICE_SHELL = "/system/bin/sh"
SHELL_INTERPRETERS = frozenset({"/bin/sh", DEVICE_SHELL})
"""The interpreters a script may name: both mean the device's own shell (Android has no /bin/sh)."""
SCREENSHOT_TIMEOUT_S = 60.0
BUGREPORT_TIMEOUT_S = 900.0
"""`adb bugreport` runs dumpstate, which takes one to several minutes."""


def keep_last_lines(source: Path, destination: Path, max_lines: int) -> None:
    """Write the last `max_lines` lines of `source` to `destination`, reading `source` once with bounded memory."""
    with source.open("rb") as file:
        tail = collections.deque(file, maxlen=max_lines)
    with destination.open("wb") as file:
        file.writelines(tail)


def starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(magic)) == magic
    except FileNotFoundError:
        return False


class AndroidDiagnostics(AdbTools, AgentJournal):
    async def capture_screenshot(self, destination: Path) -> None:
        """`adb -s S exec-out screencap -p`, its standard output written to `destination`.

        exec-out rather than shell: no pseudo-terminal, so the PNG's bytes arrive unaltered (`shell` turned LF into
        CR LF on older devices).
        """
        await self.adb(
            "exec-out", "screencap", "-p", stdout_path=destination, limit_s=max(self.tool_timeout, SCREENSHOT_TIMEOUT_S)
        )
        if not await asyncio.to_thread(starts_with, destination, PNG_MAGIC):
            raise ToolFailed(f"screencap on {self.serial} did not produce a PNG (is the screen secure or off?)")

    async def collect_logs(self, destination: Path, *, since_minutes: int, max_lines: int) -> None:
        """`adb -s S logcat -d -v threadtime -t EPOCH.000`, then only its last `max_lines` lines are kept.

        -d dumps the buffers and exits; -t with seconds since the epoch starts `since_minutes` ago by this host's
        clock (a device whose clock is far off gives more or fewer minutes). logcat's own `-t COUNT` cannot be combined
        with a start time, so the line limit is applied here.
        """
        since = f"{time.time() - since_minutes * 60:.3f}"
        raw = destination.with_name(destination.name + ".raw")
        try:
            await self.adb("logcat", "-d", "-v", "threadtime", "-t", since, stdout_path=raw)
            await asyncio.to_thread(keep_last_lines, raw, destination, max_lines)
        finally:
            with contextlib.suppress(FileNotFoundError):
                raw.unlink()

    async def bugreport(self, destination: Path) -> None:
        """`adb -s S bugreport DESTINATION.zip`, the zip then renamed to `destination`.

        adb appends `.zip` to a path without it, so it is given a path that already ends in .zip.
        """
        target = destination if destination.suffix == ".zip" else destination.with_name(destination.name + ".zip")
        await self.adb("bugreport", str(target), limit_s=max(self.tool_timeout, BUGREPORT_TIMEOUT_S))
        if not target.exists():
            raise ToolFailed(f"adb bugreport on {self.serial} wrote no file (dumpstate may be disabled on this build)")
        if target != destination:
            target.replace(destination)

    async def run_script(
        self,
        script: str,
        *,
        interpreter: str,
        timeout: float,  # noqa: ASYNC109  (the script's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult:
        """`adb -s S shell /system/bin/sh` with the script on standard input; a non-zero exit is returned, not raised.

        Needs adb's shell protocol (Android 7+) for the exit code to come back. The script's stdin is the script
        itself, so it should not read from stdin. `work_dir` is on the host and not used.
        """
        if interpreter not in SHELL_INTERPRETERS:
            allowed = " or ".join(sorted(SHELL_INTERPRETERS))
            raise InvalidArguments(f"interpreter {interpreter} is not available on Android; use {allowed}")
        return await process.run(
            self.argv("shell", DEVICE_SHELL), timeout=timeout, stdin=script.encode(), output_limit=output_limit
        )
