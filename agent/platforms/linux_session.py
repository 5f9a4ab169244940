"""The graphical sessions of a Linux device, found through logind, and tools run inside them as their user.

tetherd is a root system service: it has no DISPLAY, XDG_RUNTIME_DIR or D-Bus session bus of its own, while the
screen, the sound server, notifications and desktop settings all belong to the user logged in at the screen.

Sessions are read with `loginctl show-session ID -p ...` (key=value lines) rather than `--json`: Debian 12's systemd
252 has no JSON output for sessions. A tool runs in a session as `runuser -u USER -- env XDG_RUNTIME_DIR=...
DBUS_SESSION_BUS_ADDRESS=... [DISPLAY=... [XAUTHORITY=...]] TOOL ...`, not `systemd-run --user --machine=USER@`: runuser
(util-linux, on every distribution) runs the tool directly and synchronously, passing on its exit code and output, and
needs neither a running user manager nor one that has imported the session's environment.
"""

import asyncio
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolNotFound
from agent.platforms.linux_tools import LinuxTools
from agent.policy import harmless_environment
from agent.process import ProcessResult

GRAPHICAL_TYPES = frozenset({"x11", "wayland", "mir"})
PROPERTIES = ("Id", "Name", "User", "Type", "State", "Remote", "Display", "TTY", "Desktop", "LockedHint")
LOCK_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class LoginSession:
    """One logind session, as `loginctl show-session` describes it."""

    id: str
    user: str
    uid: int
    type: str
    """x11, wayland, mir, tty or unspecified."""
    state: str
    remote: bool
    display: str
    """The X display (`:0`) of an X11 session, else empty."""
    tty: str
    desktop: str
    """The desktop the display manager started (`GNOME`, `ubuntu:GNOME`, `sway`), or empty."""
    locked: bool
    """logind's LockedHint: set by the session's screen locker once the screen is locked."""

    @property
    def graphical(self) -> bool:
        return self.type in GRAPHICAL_TYPES and not self.remote and self.state != "closing"

    @property
    def gnome(self) -> bool:
        return "gnome" in self.desktop.lower()

    def describe(self) -> dict[str, Any]:
        """The session as a result lists it."""
        return {"session": self.id, "user": self.user, "type": self.type, "desktop": self.desktop or None}

    def named(self) -> str:
        return f"session {self.id} of {self.user} ({self.type}{', ' + self.desktop if self.desktop else ''})"


def parse_session(text: str) -> LoginSession | None:
    """The session `loginctl show-session -p ...` printed, or None if it lacks a name or numeric user."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if not values.get("Id") or not values.get("Name") or not values.get("User", "").isdigit():
        return None
    return LoginSession(
        id=values["Id"],
        user=values["Name"],
        uid=int(values["User"]),
        type=values.get("Type", ""),
        state=values.get("State", ""),
        remote=values.get("Remote") == "yes",
        display=values.get("Display", ""),
        tty=values.get("TTY", ""),
        desktop=values.get("Desktop", ""),
        locked=values.get("LockedHint") == "yes",
    )


def one_per_user(sessions: Sequence[LoginSession]) -> list[LoginSession]:
    """The first session of each user: per-user services (PipeWire, dconf) need to be reached only once."""
    seen: dict[str, LoginSession] = {}
    for session in sessions:
        seen.setdefault(session.user, session)
    return list(seen.values())


class LinuxSessions(LinuxTools):
    """Finding logind sessions, running a tool as a session's user, and locking the graphical sessions."""

    def __init__(
        self, *args: Any, user_runtime_root: Path = Path("/run/user"), lock_wait_s: float = 5.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user_runtime_root = user_runtime_root
        self.lock_wait_s = lock_wait_s
        """How long a session's screen locker has to report the screen locked (LockedHint) after the Lock signal."""

    async def login_sessions(self) -> list[LoginSession]:
        """Every session logind has, in its order; one that ends while being read is left out."""
        listing = await self.tool("loginctl", "list-sessions", "--no-legend")
        ids = [line.split()[0] for line in listing.stdout_tail.splitlines() if line.strip()]
        sessions = []
        for session_id in ids:
            session = await self._read_session(session_id)
            if session is not None:
                sessions.append(session)
        return sessions

    async def graphical_sessions(self) -> list[LoginSession]:
        """The local X11, Wayland and Mir sessions: those with a screen at the device."""
        return [session for session in await self.login_sessions() if session.graphical]

    async def _read_session(self, session_id: str) -> LoginSession | None:
        argv = ["loginctl", "show-session", session_id]
        for name in PROPERTIES:
            argv += ["-p", name]
        shown = await self.probe(argv)
        return parse_session(shown.stdout_tail) if shown.returncode == 0 else None

    async def as_session_user(self, session: LoginSession, *argv: str) -> ProcessResult:
        """Run `argv` as the session's user, with its runtime directory, session bus and X display, and nothing of
        tetherd's environment that could carry a secret; a non-zero exit raises ToolFailed. The tool must be on
        tetherd's PATH (runuser's own PATH holds at least what it does)."""
        if shutil.which(argv[0]) is None:
            raise ToolNotFound(f"{argv[0]} not found on PATH")
        runtime = self.user_runtime_root / str(session.uid)
        environment = [f"XDG_RUNTIME_DIR={runtime}", f"DBUS_SESSION_BUS_ADDRESS=unix:path={runtime}/bus"]
        if session.display:
            environment.append(f"DISPLAY={session.display}")
            # GDM keeps an X session's cookie in the runtime directory; other display managers in ~/.Xauthority,
            # which X clients read by default (runuser sets HOME).
            cookie = runtime / "gdm" / "Xauthority"
            if cookie.is_file():
                environment.append(f"XAUTHORITY={cookie}")
        # Only harmless variables of tetherd's own: the user can read the environment of a process of theirs.
        return await self.tool(
            "runuser", "-u", session.user, "--", "env", *environment, *argv, env=harmless_environment(os.environ)
        )

    async def lock_sessions(self) -> dict[str, Any]:
        """Lock every session and read back that each graphical one is locked; FAILED if none, or one is not."""
        sessions = await self.graphical_sessions()
        if not sessions:
            raise HandlerError("no graphical session to lock: logind lists none at the device's screen")
        return {"sessions": await self.lock_graphical(sessions)}

    async def lock_graphical(self, sessions: Sequence[LoginSession]) -> list[dict[str, Any]]:
        """`loginctl lock-sessions`, then wait for each of `sessions` to report itself locked (LockedHint).

        logind only broadcasts a Lock signal and exits 0 whether or not anything locks: a session is locked only
        once its screen locker says so.
        """
        await self.tool("loginctl", "lock-sessions")
        deadline = time.monotonic() + self.lock_wait_s
        states = {session.id: session for session in sessions}
        while True:
            for session_id, session in states.items():
                if not session.locked:
                    states[session_id] = await self._read_session(session_id) or session
            unlocked = [session for session in states.values() if not session.locked]
            if not unlocked or time.monotonic() >= deadline:
                break
            await asyncio.sleep(LOCK_POLL_S)
        listed = [{**session.describe(), "locked": session.locked} for session in states.values()]
        if unlocked:
            names = ", ".join(session.named() for session in unlocked)
            raise HandlerError(
                f"{names} did not lock within {self.lock_wait_s:g} s: no screen locker answered logind's Lock",
                result={"sessions": listed},
            )
        return listed
