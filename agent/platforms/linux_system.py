"""Power-off, clock, screen, sound and attention on Linux: systemd tools, xset or gsettings, wpctl or amixer, wall and
notify-send, beep."""

import os
import shutil
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolNotFound, UnsupportedOperation
from agent.platforms.linux_session import LinuxSessions, one_per_user
from shared.arguments.system import AudioStream

UNENROL_SCRIPT = 'systemctl disable --now "$0"; rm -rf -- "$@"'
"""Stops the unit ($0), then deletes the paths ($@) even if the unit was already gone."""
VOLUME_STREAMS = frozenset({AudioStream.MUSIC, AudioStream.SYSTEM})
"""Linux has one output volume, not one per stream; these two are the streams it stands for."""


class LinuxSystem(LinuxSessions):
    """System settings through systemd (run as root, for every user) and, for the screen, sound and notifications,
    the graphical sessions logind lists, reached as their user (see linux_session)."""

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

    async def set_brightness(self, percent: int) -> None:
        """Set the first backlight device to `percent` of its maximum."""
        await self.tool("brightnessctl", "set", f"{percent}%")

    async def set_screen_off_timeout(self, seconds: int) -> dict[str, Any]:
        """Turn the screen off after `seconds` of inactivity (0: never) in every graphical session.

        GNOME (X11 or Wayland) keeps its own idle timer, which would override xset's: there it is
        `gsettings set org.gnome.desktop.session idle-delay`. Other X11 sessions get xset's screen saver and DPMS
        timeouts on their display. Other Wayland compositors (sway, weston, KDE) have no common setting and are
        refused before anything is changed. Without any graphical session, an X display named by tetherd's own
        DISPLAY (an X server started without a login session, as some kiosks do) gets xset as before.
        """
        sessions = await self.graphical_sessions()
        if not sessions:
            display = os.environ.get("DISPLAY")
            if not display:
                raise HandlerError(
                    "no graphical session is logged in and tetherd has no DISPLAY of its own: nothing has a screen "
                    "timeout to set"
                )
            await self.tool(*xset_timeout(seconds))
            return {"mechanism": "xset", "display": display, "sessions": []}
        for session in sessions:
            if not session.gnome and session.type != "x11":
                raise UnsupportedOperation(
                    f"the screen-off timeout of {session.named()} cannot be set: on Wayland only GNOME's "
                    "(gsettings) is supported, and xset reaches X11 sessions only"
                )
        applied = []
        for session in sessions:
            if session.gnome:
                await self.as_session_user(
                    session, "gsettings", "set", "org.gnome.desktop.session", "idle-delay", str(seconds)
                )
                applied.append({**session.describe(), "mechanism": "gsettings"})
            else:
                await self.as_session_user(session, *xset_timeout(seconds))
                applied.append({**session.describe(), "mechanism": "xset", "display": session.display})
        return {"mechanism": "+".join(sorted({entry["mechanism"] for entry in applied})), "sessions": applied}

    async def set_stream_volume(self, stream: AudioStream, percent: int) -> None:
        """Set the default output's volume with PipeWire's wpctl if it is installed, else ALSA's amixer.

        PipeWire runs per user: wpctl runs as each graphical session's user, with that user's XDG_RUNTIME_DIR. With
        no graphical session, only ALSA's system-wide mixer is left.
        """
        if stream not in VOLUME_STREAMS:
            raise UnsupportedOperation(
                f"the {stream} stream has no volume of its own on {self.kind}: only music and system "
                "(both the default output's volume) can be set"
            )
        volume = f"{percent}%"
        # Chosen per call: an installed or removed sound stack should not need an agent restart.
        if shutil.which("wpctl"):
            sessions = one_per_user(await self.graphical_sessions())
            for session in sessions:
                await self.as_session_user(session, "wpctl", "set-volume", "@DEFAULT_AUDIO_SINK@", volume)
            if sessions:
                return
            if not shutil.which("amixer"):
                raise HandlerError(
                    "wpctl sets a user's PipeWire volume and no graphical session is logged in; amixer (ALSA) "
                    "is not installed either"
                )
        if shutil.which("amixer"):
            await self.tool("amixer", "sset", "Master", volume)
        else:
            raise ToolNotFound("neither wpctl (PipeWire) nor amixer (ALSA) found on PATH")

    async def notify(self, title: str, message: str) -> dict[str, Any]:
        """wall to the terminals of console and SSH logins, and notify-send in each graphical session.

        A terminal is one logind names, or one `who` lists from utmp, which is what wall writes to: OpenSSH opens the
        logind session before it allocates the terminal, so logind never names an SSH login's (seen on Debian 12).

        wall's text goes through stdin: given as an argument, a message that names a file would make wall, as root,
        broadcast that file's contents. notify-send gets `--` before the title, so no title is read as an option.
        FAILED when nobody was reached.
        """
        sessions = await self.login_sessions()
        logind_terminals = {session.tty for session in sessions if session.tty and not session.graphical}
        terminals = sorted(logind_terminals | await self.logged_in_terminals())
        if terminals:
            text = f"{title}\n{message}\n" if message else f"{title}\n"
            await self.tool("wall", stdin=text.encode())
        reached: list[dict[str, Any]] = []
        missed: list[str] = []
        for session in [session for session in sessions if session.graphical]:
            argv = ["notify-send", "--app-name=Tether", "--", title, *([message] if message else [])]
            try:
                await self.as_session_user(session, *argv)
            except HandlerError as err:
                missed.append(f"{session.named()}: {err}")
            else:
                reached.append(session.describe())
        if not terminals and not reached:
            raise HandlerError(
                "; ".join(missed) if missed else "nobody to notify: logind lists no session with a terminal or a screen"
            )
        return {"terminals": terminals, "sessions": reached, "not_reached": missed}

    async def logged_in_terminals(self) -> set[str]:
        """The terminals of the logins utmp records (`who`), X displays (`:0`) left out."""
        listed = await self.tool("who")
        fields = (line.split() for line in listed.stdout_tail.splitlines())
        return {words[1] for words in fields if len(words) >= 2 and not words[1].startswith(":")}

    async def beep(self, seconds: float) -> None:
        """Sound the PC speaker with `beep`; it needs no sound server, but boards without a speaker fail."""
        await self.tool("beep", "-l", str(max(1, round(seconds * 1000))), limit_s=self.tool_timeout + seconds)


def xset_timeout(seconds: int) -> list[str]:
    """xset's screen saver and DPMS standby, suspend and off after `seconds`; for 0, both off."""
    if seconds == 0:
        return ["xset", "s", "off", "-dpms"]
    after = str(seconds)
    return ["xset", "s", after, "0", "+dpms", "dpms", after, after, after]
