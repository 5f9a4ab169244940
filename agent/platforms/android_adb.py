"""The base every Android capability mix-in shares: one attached device, reached as `adb -s SERIAL ...`."""

import shlex
from collections.abc import Sequence
from pathlib import Path

from agent import process
from agent.errors import ToolFailed
from agent.process import ProcessResult, last_line
from shared.operations import Platform

READ_LIMIT = 4 * 1024 * 1024
"""The most a listing (getprop, pm list packages, dumpsys battery) may print; real devices print well under 1 MiB."""


def remote_command(*words: str) -> list[str]:
    """`words` quoted for the device's shell.

    `adb shell` joins its arguments with spaces and hands the line to `sh -c` on the device, so every word is quoted
    here: a title such as `Hello; reboot` stays one argument instead of becoming a second command.
    """
    return [shlex.quote(word) for word in words]


class AdbTools:
    """Settings of one Android device; mix-ins (android_*.py) add capabilities on top of it."""

    kind = Platform.ANDROID

    def __init__(
        self, serial: str, adb: str = "adb", tool_timeout: float = 60.0, agent_unit: str = "tetherd.service"
    ) -> None:
        self.serial = serial
        self.adb_path = adb
        self.tool_timeout = tool_timeout
        self.agent_unit = agent_unit
        """The systemd unit of the agent bridging this device, on the host."""

    def argv(self, *args: str) -> list[str]:
        """`adb -s SERIAL args...`: every adb call names its device, so another one attached later is never hit."""
        return [self.adb_path, "-s", self.serial, *args]

    async def adb(
        self,
        *args: str,
        limit_s: float | None = None,
        stdin: bytes | None = None,
        stdout_path: Path | None = None,
        output_limit: int = 64 * 1024,
    ) -> ProcessResult:
        """Run `adb -s SERIAL args...`; a non-zero exit raises ToolFailed with adb's last line (`device not found`)."""
        return await process.check(
            self.argv(*args),
            timeout=limit_s or self.tool_timeout,
            stdin=stdin,
            stdout_path=stdout_path,
            output_limit=output_limit,
        )

    async def shell(self, *words: str, limit_s: float | None = None, output_limit: int = 64 * 1024) -> ProcessResult:
        """Run one command on the device with `adb -s SERIAL shell`, each word quoted for the device's shell."""
        return await self.adb("shell", *remote_command(*words), limit_s=limit_s, output_limit=output_limit)

    async def shell_ok(self, *words: str, failure_words: Sequence[str] = ("Failure", "Error:", "Exception")) -> None:
        """`shell`, and also fail when the tool printed an error but exited 0, as older `pm` and `cmd` builds do."""
        result = await self.shell(*words)
        output = result.stdout_tail + result.stderr_tail
        if any(word in output for word in failure_words):
            line = last_line(result.stderr_tail) or last_line(result.stdout_tail)
            raise ToolFailed(f"{' '.join(words[:2])} on {self.serial} failed: {line}", result=result.summary())

    async def read_text(self, *words: str) -> str:
        """The standard output of a read-only device command, refused rather than cut if it is over READ_LIMIT."""
        result = await self.shell(*words, output_limit=READ_LIMIT)
        if result.stdout_truncated:
            raise ToolFailed(f"{' '.join(words[:2])} on {self.serial} printed more than {READ_LIMIT} bytes")
        return result.stdout_tail
