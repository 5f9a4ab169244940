"""Automatic OS updates on Linux: unattended-upgrades (apt) or dnf-automatic, both started by a systemd timer.

The timer's enablement and schedule (a drop-in) decide when updates run; apt also needs unattended-upgrades switched on
in its configuration, or the timer's run installs nothing. A pause is a drop-in on the timer's service whose condition
fails while the drop-in exists, so removing that one file resumes updates, and a persistent timer of Tether's own
removes it when the pause ends.
"""

import asyncio
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolNotFound
from agent.files import write_atomically
from agent.platforms.linux_tools import LinuxTools, remove_file
from shared.arguments.updates import OsUpdatePolicyArguments, UpdatePolicy

RESUME_UNIT = "tether-os-updates-resume"
UPGRADE_ALWAYS = "always"
"""APT::Periodic::Unattended-Upgrade for "at every run of the timer" (apt 1.5 and later)."""
UPGRADE_NEVER = "0"
APT_CONFIG_FILE = "99tether-updates"
"""Read after the distribution's 20auto-upgrades and 50unattended-upgrades, so its settings win."""


@dataclass(frozen=True, slots=True)
class UpdateBackend:
    name: str
    timer: str
    """The systemd timer that starts an automatic upgrade."""

    @property
    def service(self) -> str:
        return self.timer.removesuffix(".timer") + ".service"


APT = UpdateBackend("apt", "apt-daily-upgrade.timer")
"""Runs `apt.systemd.daily install`, i.e. unattended-upgrade when APT::Periodic::Unattended-Upgrade is on."""
DNF = UpdateBackend("dnf", "dnf-automatic-install.timer")
"""Runs `dnf-automatic --installupdates`, whatever automatic.conf's apply_updates says."""


def update_backend() -> UpdateBackend:
    """The automatic-update tool installed now, apt's first; chosen per call, as the package managers are."""
    if shutil.which("unattended-upgrade"):
        return APT
    if shutil.which("dnf-automatic"):
        return DNF
    raise ToolNotFound(
        "no automatic-update tool found on PATH: install unattended-upgrades (unattended-upgrade, apt) "
        "or dnf-automatic (dnf)"
    )


def header(operation: str, *notes: str) -> list[str]:
    return [f"# Managed by Tether ({operation}): changes made here are overwritten.", *(f"# {note}" for note in notes)]


class LinuxUpdates(LinuxTools):
    """SET_OS_UPDATE_POLICY and PAUSE_OS_UPDATES through the backend's timer and Tether's files under `etc_dir`."""

    @property
    def _units_dir(self) -> Path:
        return self.etc_dir / "systemd" / "system"

    def _window_file(self, backend: UpdateBackend) -> Path:
        return self._units_dir / f"{backend.timer}.d" / "tether.conf"

    def _pause_file(self, backend: UpdateBackend) -> Path:
        return self._units_dir / f"{backend.service}.d" / "tether-pause.conf"

    def _apt_file(self) -> Path:
        return self.etc_dir / "apt" / "apt.conf.d" / APT_CONFIG_FILE

    async def set_os_update_policy(self, policy: OsUpdatePolicyArguments) -> dict[str, Any]:
        backend = update_backend()
        if policy.reboot and backend is not APT:
            raise HandlerError(
                "dnf-automatic reboots only as /etc/dnf/automatic.conf says, which Tether does not edit: "
                "send reboot: false, or set reboot there"
            )
        automatic = policy.policy is not UpdatePolicy.MANUAL
        written: list[str] = []
        if backend is APT:
            await self._write(self._apt_file(), apt_settings(automatic, policy.reboot))
            written.append(str(self._apt_file()))
        window = self._window_file(backend)
        schedule = timer_window(policy)
        if schedule is None:
            await asyncio.to_thread(remove_file, window)
        else:
            await self._write(window, schedule)
            written.append(str(window))
        await self.tool("systemctl", "daemon-reload")
        if automatic:
            await self.tool("systemctl", "enable", backend.timer)
            await self.tool("systemctl", "restart", backend.timer)  # rearmed on the new schedule
        else:
            await self.tool("systemctl", "disable", "--now", backend.timer)
        result: dict[str, Any] = {
            **policy.model_dump(mode="json", exclude_none=True),
            "backend": backend.name,
            "timer": backend.timer,
            "files": written,
        }
        if backend is APT:
            result["unattended_upgrade"] = await self._apt_reads(automatic, policy.reboot)
        result["timer_enabled"] = await self._enablement(backend.timer, expected=automatic)
        await self._drop_in_loaded(backend.timer, window, expected=schedule is not None)
        result["schedule"] = await self._show(backend.timer, "TimersCalendar")
        return result

    async def pause_os_updates(self, until: datetime | None) -> dict[str, Any]:
        """Pause the backend's automatic updates, until `until` (UTC or with an offset) or until resumed."""
        backend = update_backend()
        state = await self._show(backend.service, "LoadState")
        if state != "loaded":
            # A drop-in for a unit that is not there would pause nothing; say so before changing anything.
            raise HandlerError(
                f"{backend.service} is {state or 'unknown'} to systemd: there are no automatic updates to pause"
            )
        pause = self._pause_file(backend)
        end = None if until is None else until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        note = f"Automatic updates are paused until {end}." if end else "Automatic updates are paused."
        await self._write(
            pause,
            [
                *header(
                    "PAUSE_OS_UPDATES", note, "Removing this file resumes them: the condition fails while it exists."
                ),
                "[Unit]",
                f"ConditionPathExists=!{pause}",
            ],
        )
        if end is None:
            await self._remove_resume_timer()
        else:
            await self._write(self._units_dir / f"{RESUME_UNIT}.service", resume_service(pause))
            await self._write(self._units_dir / f"{RESUME_UNIT}.timer", resume_timer(end))
        await self.tool("systemctl", "daemon-reload")
        if end is not None:
            await self.tool("systemctl", "enable", f"{RESUME_UNIT}.timer")
            await self.tool("systemctl", "restart", f"{RESUME_UNIT}.timer")  # rearmed on the new end
            await self._enablement(f"{RESUME_UNIT}.timer", expected=True)
        await self._drop_in_loaded(backend.service, pause, expected=True)
        return {
            "paused": True,
            "until": None if until is None else until.astimezone(UTC).isoformat(),
            "backend": backend.name,
            "service": backend.service,
            "file": str(pause),
            "resume_timer": None if end is None else f"{RESUME_UNIT}.timer",
        }

    async def resume_os_updates(self) -> dict[str, Any]:
        backend = update_backend()
        pause = self._pause_file(backend)
        was_paused = await asyncio.to_thread(remove_file, pause)
        await self._remove_resume_timer()
        await self.tool("systemctl", "daemon-reload")
        await self._drop_in_loaded(backend.service, pause, expected=False)
        return {"paused": False, "was_paused": was_paused, "backend": backend.name, "service": backend.service}

    async def _remove_resume_timer(self) -> None:
        """Stop and delete the timer of an earlier pause, if there is one, so it cannot end a later pause."""
        timer = self._units_dir / f"{RESUME_UNIT}.timer"
        if timer.exists():
            await self.tool("systemctl", "disable", "--now", f"{RESUME_UNIT}.timer")
        await asyncio.to_thread(remove_file, timer)
        await asyncio.to_thread(remove_file, self._units_dir / f"{RESUME_UNIT}.service")

    async def _write(self, path: Path, lines: list[str]) -> None:
        await asyncio.to_thread(write_atomically, path, ("\n".join(lines) + "\n").encode())

    async def _show(self, unit: str, prop: str) -> str:
        shown = await self.tool("systemctl", "show", "-p", prop, "--value", unit)
        return shown.stdout_tail.strip()

    async def _enablement(self, unit: str, *, expected: bool) -> str:
        """`systemctl is-enabled`'s word for `unit`, checked against what was asked (it exits 1 when disabled)."""
        state = (await self.probe(["systemctl", "is-enabled", unit])).stdout_tail.strip()
        if (state == "enabled") != expected:
            raise HandlerError(
                f"systemd reports {unit} as {state or 'unknown'} after it was {'en' if expected else 'dis'}abled"
            )
        return state

    async def _drop_in_loaded(self, unit: str, path: Path, *, expected: bool) -> None:
        """Check with systemd that it reads `path` for `unit` (or no longer does) after the daemon-reload."""
        loaded = str(path) in (await self._show(unit, "DropInPaths")).split()
        if loaded != expected:
            raise HandlerError(
                f"systemd {'does not read' if expected else 'still reads'} {path} for {unit} after daemon-reload"
            )

    async def _apt_reads(self, automatic: bool, reboot: bool) -> dict[str, str]:
        """What apt's configuration now says, all files read: Tether's must be the last word on both settings."""
        shown = await self.tool(
            "apt-config",
            "shell",
            "UPGRADE",
            "APT::Periodic::Unattended-Upgrade",
            "REBOOT",
            "Unattended-Upgrade::Automatic-Reboot",
        )
        values = dict(line.split("=", 1) for line in shown.stdout_tail.splitlines() if "=" in line)
        reads = {key: values.get(key, "").strip("'") for key in ("UPGRADE", "REBOOT")}
        wanted = {"UPGRADE": UPGRADE_ALWAYS if automatic else UPGRADE_NEVER, "REBOOT": "true" if reboot else "false"}
        if reads != wanted:
            raise HandlerError(
                f"apt reads APT::Periodic::Unattended-Upgrade={reads['UPGRADE']!r} and "
                f"Unattended-Upgrade::Automatic-Reboot={reads['REBOOT']!r} after {self._apt_file()} set "
                f"{wanted['UPGRADE']!r} and {wanted['REBOOT']!r}: a file read after it overrides them"
            )
        return {
            "APT::Periodic::Unattended-Upgrade": reads["UPGRADE"],
            "Unattended-Upgrade::Automatic-Reboot": reads["REBOOT"],
        }


def apt_settings(automatic: bool, reboot: bool) -> list[str]:
    return [
        *(f"//{line[1:]}" for line in header("SET_OS_UPDATE_POLICY")),
        'APT::Periodic::Update-Package-Lists "1";',
        # "always": every run of the timer upgrades, so the timer's schedule (a window's drop-in) is the only one;
        # a number of days would skip a window that fell on the same calendar day as the last run.
        f'APT::Periodic::Unattended-Upgrade "{UPGRADE_ALWAYS if automatic else UPGRADE_NEVER}";',
        # Reboot right after the upgrade that needs it, so a windowed reboot stays in the window.
        f'Unattended-Upgrade::Automatic-Reboot "{"true" if reboot else "false"}";',
        'Unattended-Upgrade::Automatic-Reboot-Time "now";',
    ]


def timer_window(policy: OsUpdatePolicyArguments) -> list[str] | None:
    """The timer drop-in of a windowed policy: start at a random time in the window, and never catch up a missed
    window later (the distributions' timers are Persistent); None for the other policies."""
    window = policy.window_minutes()
    if window is None:
        return None
    start, length = window
    return [
        *header(
            "SET_OS_UPDATE_POLICY",
            f"Automatic updates start between {policy.window_start} and {policy.window_end}, device time.",
        ),
        "[Timer]",
        "OnCalendar=",
        f"OnCalendar=*-*-* {start // 60:02d}:{start % 60:02d}:00",
        f"RandomizedDelaySec={length * 60 - 60}",
        "AccuracySec=1s",
        "Persistent=false",
    ]


def resume_timer(end: str) -> list[str]:
    return [
        *header("PAUSE_OS_UPDATES", f"Ends the pause of automatic updates at {end}."),
        "[Unit]",
        "Description=End the pause of automatic OS updates (Tether)",
        "",
        "[Timer]",
        f"OnCalendar={end}",
        "AccuracySec=1s",
        "Persistent=true",  # a device that was off at the end resumes at its next boot
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]


def resume_service(pause: Path) -> list[str]:
    return [
        *header("PAUSE_OS_UPDATES"),
        "[Unit]",
        "Description=End the pause of automatic OS updates (Tether)",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart=/bin/rm -f {pause}",
    ]
