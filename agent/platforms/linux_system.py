"""Power-off, clock, locale, screen, sound and attention on Linux: systemd tools, xset, wpctl or amixer, wall, beep."""

import os
import shutil
from pathlib import Path

from agent.errors import HandlerError, ToolNotFound, UnsupportedOperation
from agent.platforms.linux_tools import LinuxTools
from shared.arguments.system import AudioStream

UNENROL_SCRIPT = 'systemctl disable --now "$0"; rm -rf -- "$@"'
"""Stops the unit ($0), then deletes the paths ($@) even if the unit was already gone."""
VOLUME_STREAMS = frozenset({AudioStream.MUSIC, AudioStream.SYSTEM})
"""Linux has one output volume, not one per stream; these two are the streams it stands for."""


class LinuxSystem(LinuxTools):
    """System settings through systemd (run as root, for every user) and, for the screen, the X display.

    The screen and sound belong to a graphical session, not to the system: tetherd reaches them through the
    DISPLAY, XAUTHORITY and XDG_RUNTIME_DIR its service environment names (e.g. `Environment=DISPLAY=:0` in its
    systemd unit on a kiosk-style device).
    """

    async def shut_down(self) -> None:
        """Ask systemd to power off; it returns once the shutdown is queued, before the system goes down."""
        await self.tool("systemctl", "poweroff")

    async def remove_agent(self, delay_s: float) -> str:
        """A transient systemd timer stops and disables the unit, so tetherd outlives this call and reports it."""
        await self.tool(
            "systemd-run",
            f"--on-active={delay_s:g}",
            "--unit=tetherd-remove",
            "--collect",
            "--description=Remove the Tether agent",
            "systemctl",
            "disable",
            "--now",
            self.agent_unit,
        )
        return self.agent_unit

    async def remove_device(self, delay_s: float) -> tuple[str, list[Path]]:
        """As remove_agent, then `rm -rf` of the agent's credentials and state, from one transient unit, in order.

        The paths reach `sh` as arguments, never inside its script. A path that is the root or a top-level directory
        (a state_dir of `/var`, say) is refused before anything is scheduled.
        """
        paths = list(self.enrolment_paths)
        unsafe = [str(path) for path in paths if not path.is_absolute() or len(path.parts) < 3 or ".." in path.parts]
        if unsafe:
            raise HandlerError(f"refusing to delete {', '.join(unsafe)}: not a file or directory of the agent's own")
        await self.tool(
            "systemd-run",
            f"--on-active={delay_s:g}",
            "--unit=tetherd-remove-device",
            "--collect",
            "--description=Unenrol the Tether device",
            "sh",
            "-c",
            UNENROL_SCRIPT,
            self.agent_unit,
            *(str(path) for path in paths),
        )
        return self.agent_unit, paths

    async def set_time_zone(self, zone: str) -> None:
        await self.tool("timedatectl", "set-timezone", zone)

    async def set_language(self, locale: str) -> None:
        """Set the system locale in /etc/locale.conf; sessions started from now on use it, running ones keep theirs."""
        await self.tool("localectl", "set-locale", f"LANG={posix_locale(locale)}")

    async def set_brightness(self, percent: int) -> None:
        """Set the first backlight device to `percent` of its maximum."""
        await self.tool("brightnessctl", "set", f"{percent}%")

    async def set_screen_off_timeout(self, seconds: int) -> None:
        """Blank the X screen and switch it off (DPMS) after `seconds` of inactivity; 0 keeps it on for good.

        Linux has no system-wide screen timeout: the console's (`setterm --blank`) needs the tty, logind's IdleAction
        suspends or locks rather than turning the screen off, and Wayland compositors each have their own. A kiosk runs
        one X display, which tetherd reaches through DISPLAY in its environment, so that is where this acts.
        """
        if not os.environ.get("DISPLAY"):
            raise HandlerError(
                "the screen-off timeout is set on an X display, and tetherd has no DISPLAY: "
                "set DISPLAY (and XAUTHORITY) in its service environment"
            )
        if seconds == 0:
            await self.tool("xset", "s", "off", "-dpms")
        else:
            after = str(seconds)
            await self.tool("xset", "s", after, "0", "+dpms", "dpms", after, after, after)

    async def set_stream_volume(self, stream: AudioStream, percent: int) -> None:
        """Set the default output's volume with PipeWire's wpctl if it is installed, else ALSA's amixer."""
        if stream not in VOLUME_STREAMS:
            raise UnsupportedOperation(
                f"the {stream} stream has no volume of its own on {self.kind}: only music and system "
                "(both the default output's volume) can be set"
            )
        # Chosen per call: an installed or removed sound stack should not need an agent restart.
        if shutil.which("wpctl"):
            await self.tool("wpctl", "set-volume", "@DEFAULT_AUDIO_SINK@", f"{percent}%")
        elif shutil.which("amixer"):
            await self.tool("amixer", "sset", "Master", f"{percent}%")
        else:
            raise ToolNotFound("neither wpctl (PipeWire) nor amixer (ALSA) found on PATH")

    async def notify(self, title: str, message: str) -> None:
        """Broadcast to every terminal with wall (console, serial, SSH), the one channel root reaches without a session.

        The text goes through stdin: given as an argument, a message that names a file would make wall, as root,
        broadcast that file's contents.
        """
        text = f"{title}\n{message}\n" if message else f"{title}\n"
        await self.tool("wall", stdin=text.encode())

    async def beep(self, seconds: float) -> None:
        """Sound the PC speaker with `beep`; it needs no sound server, but boards without a speaker fail."""
        await self.tool("beep", "-l", str(max(1, round(seconds * 1000))), limit_s=self.tool_timeout + seconds)


def posix_locale(language: str) -> str:
    """The glibc locale name for a language tag: `de-DE`, `de_DE` and `de_DE.UTF-8` become `de_DE.UTF-8`."""
    name = language.removesuffix(".UTF-8").replace("-", "_")
    return f"{name}.UTF-8"
