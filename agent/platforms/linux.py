"""A Linux device driven through systemd, logind and NetworkManager command-line tools."""

import asyncio
import os
import tempfile
from pathlib import Path

from agent.errors import HandlerError
from agent.inventory import linux_inventory, local_time_zone
from agent.platforms.contract import DeviceSurvey
from agent.platforms.linux_app_config import LinuxAppConfig
from agent.platforms.linux_certificates import LinuxCertificates
from agent.platforms.linux_desktop import LinuxDesktop
from agent.platforms.linux_diagnostics import LinuxDiagnostics
from agent.platforms.linux_kiosk import LinuxKiosk
from agent.platforms.linux_locale import LinuxLocale
from agent.platforms.linux_location import LinuxLocation
from agent.platforms.linux_network import LinuxNetwork
from agent.platforms.linux_packages import LinuxPackages
from agent.platforms.linux_remote import LinuxRemoteConnection
from agent.platforms.linux_restrictions import LinuxRestrictions
from agent.platforms.linux_system import LinuxSystem
from agent.platforms.linux_updates import LinuxUpdates
from agent.process import ProcessResult


class LinuxPlatform(
    LinuxNetwork,
    LinuxSystem,
    LinuxLocale,
    LinuxDesktop,
    LinuxDiagnostics,
    LinuxPackages,
    LinuxCertificates,
    LinuxKiosk,
    LinuxLocation,
    LinuxUpdates,
    LinuxRestrictions,
    LinuxAppConfig,
    LinuxRemoteConnection,
):
    """The tools a handler may use on Linux; every process goes through `agent.process`.

    Capabilities beyond power, sessions, Wi-Fi radio and scripts come from the linux_* mix-ins listed as bases.
    """

    async def boot_id(self) -> str:
        """The kernel's random id of this boot; it changes exactly when the device reboots."""
        try:
            return self.boot_id_path.read_text().strip()
        except OSError as err:
            raise HandlerError(f"cannot read the boot id from {self.boot_id_path}: {err.strerror or err}") from err

    async def survey(self) -> DeviceSurvey:
        """The inventory (os-release, psutil) and the zone the system is set to, read from files: no tool runs."""
        inventory = await asyncio.to_thread(linux_inventory)
        return DeviceSurvey(inventory=inventory, time_zone=local_time_zone(self.etc_dir))

    async def reboot(self) -> None:
        """Ask systemd to reboot; it returns once the reboot is queued, before the system goes down."""
        await self.tool("systemctl", "reboot")

    async def set_wifi(self, enabled: bool) -> None:
        await self.tool("nmcli", "radio", "wifi", "on" if enabled else "off")

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
        return await self.run_confined(
            [interpreter, name], timeout=timeout, work_dir=work_dir, output_limit=output_limit, owned=[Path(name)]
        )
