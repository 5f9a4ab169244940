"""A Linux device driven through systemd, logind and NetworkManager command-line tools."""

import os
import tempfile
from pathlib import Path

from agent import process
from agent.errors import HandlerError
from agent.process import ProcessResult
from shared.operations import Platform


class LinuxPlatform:
    """The tools a handler may use on Linux; every process goes through `agent.process`."""

    kind = Platform.LINUX

    def __init__(
        self,
        boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id"),
        tool_timeout: float = 60.0,
    ) -> None:
        self.boot_id_path = boot_id_path
        self.tool_timeout = tool_timeout

    def boot_id(self) -> str:
        """The kernel's random id of this boot; it changes exactly when the device reboots."""
        try:
            return self.boot_id_path.read_text().strip()
        except OSError as err:
            raise HandlerError(f"cannot read the boot id from {self.boot_id_path}: {err.strerror or err}") from err

    async def reboot(self) -> None:
        """Ask systemd to reboot; it returns once the reboot is queued, before the system goes down."""
        await process.check(["systemctl", "reboot"], timeout=self.tool_timeout)

    async def lock_sessions(self) -> None:
        await process.check(["loginctl", "lock-sessions"], timeout=self.tool_timeout)

    async def set_wifi(self, enabled: bool) -> None:
        await process.check(["nmcli", "radio", "wifi", "on" if enabled else "off"], timeout=self.tool_timeout)

    async def run_script(
        self,
        script: str,
        *,
        interpreter: str,
        timeout: float,  # noqa: ASYNC109  (the script's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult:
        """Run `script` from a private file in `work_dir`; a non-zero exit is returned, not raised."""
        try:
            fd, name = tempfile.mkstemp(prefix="script-", dir=work_dir)
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o700)
                file.write(script.encode())
        except OSError as err:
            raise HandlerError(f"cannot write the script to {work_dir}: {err.strerror or err}") from err
        return await process.run([interpreter, name], timeout=timeout, cwd=work_dir, output_limit=output_limit)
