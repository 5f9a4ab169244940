"""The base every Android capability mix-in shares: one attached device, reached as `adb -s SERIAL ...`."""

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from agent import process
from agent.errors import ToolFailed, UnsupportedOperation
from agent.process import ProcessResult, last_line
from shared.operations import Platform

FAILURE_WORDS = ("Failure", "Error:", "Exception")
"""What `pm`, `cmd` and `settings` print when they fail but still exit 0."""

READ_LIMIT = 4 * 1024 * 1024
"""The most a listing (getprop, pm list packages, dumpsys battery) may print; real devices print well under 1 MiB."""


def remote_command(*words: str) -> list[str]:
    """`words` quoted for the device's shell.

    `adb shell` joins its arguments with spaces and hands the line to `sh -c` on the device, so every word is quoted
    here: a title such as `Hello; reboot` stays one argument instead of becoming a second command.
    """
    return [shlex.quote(word) for word in words]


def in_user_section(text: str, user: str, header: re.Pattern[str], line: re.Pattern[str]) -> re.Match[str] | None:
    """The first line of a `dumpsys` listing matching `line` after a `header` line whose `id` group is `user`.

    `dumpsys` prints per-user state as a "User N" line followed by that user's lines, for each user in turn.
    """
    current: str | None = None
    for text_line in text.splitlines():
        heading = header.match(text_line)
        if heading:
            current = heading["id"]
            continue
        match = line.match(text_line)
        if match and current == user:
            return match
    return None


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

    async def shell_ok(
        self,
        *words: str,
        failure_words: Sequence[str] = FAILURE_WORDS,
        stderr_only: bool = False,
    ) -> ProcessResult:
        """`shell`, and also fail when the tool printed an error but exited 0, as older `pm` and `cmd` builds do.

        `stderr_only` for a command whose standard output may echo text of the caller's (a notification's message),
        where any word is innocent.
        """
        result = await self.shell(*words)
        output = result.stderr_tail if stderr_only else result.stdout_tail + result.stderr_tail
        if any(word in output for word in failure_words):
            line = last_line(result.stderr_tail) or last_line(result.stdout_tail)
            raise ToolFailed(f"{' '.join(words[:2])} on {self.serial} failed: {line}", result=result.summary())
        return result

    async def put_setting(self, namespace: str, key: str, value: str) -> None:
        """`settings put NAMESPACE KEY VALUE`, then `settings get NAMESPACE KEY` must read VALUE back.

        `settings` exits 0 with nothing done when a key is refused (a protected key on an OEM build), so the value is
        read back rather than trusted.
        """
        await self.shell_ok("settings", "put", namespace, key, value)
        stored = (await self.read_text("settings", "get", namespace, key)).strip()
        if stored != value:
            raise ToolFailed(f"settings put {namespace} {key} {value} on {self.serial} left it {stored!r}")

    async def sdk_level(self) -> int:
        """`getprop ro.build.version.sdk`: the device's API level (33 is Android 13)."""
        text = (await self.read_text("getprop", "ro.build.version.sdk")).strip()
        if not text.isdigit():
            raise ToolFailed(f"{self.serial} reported no API level (ro.build.version.sdk is {text!r})")
        return int(text)

    async def require_sdk(self, level: int, release: str, what: str) -> None:
        """Fail, naming the device's API level, unless it is at least `level` (Android `release`)."""
        found = await self.sdk_level()
        if found < level:
            raise UnsupportedOperation(
                f"{what} needs Android {release} (API {level}) or later; {self.serial} runs API {found}"
            )

    async def read_text(self, *words: str) -> str:
        """The standard output of a read-only device command, refused rather than cut if it is over READ_LIMIT."""
        result = await self.shell(*words, output_limit=READ_LIMIT)
        if result.stdout_truncated:
            raise ToolFailed(f"{' '.join(words[:2])} on {self.serial} printed more than {READ_LIMIT} bytes")
        return result.stdout_tail
