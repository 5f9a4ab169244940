"""The Linux kiosk: a systemd unit that runs the cage Wayland compositor with one app on tty1, at every boot.

The unit follows cage's own "Starting Cage on boot with systemd": it takes tty1 from its getty, opens a logind
session for the kiosk user through PAM (`PAMName=login`, the stack every distribution has, instead of cage's
suggested custom one), and is restarted whenever cage or the app exits.
"""

import asyncio
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolFailed, ToolNotFound
from agent.files import write_atomically
from agent.platforms.linux_tools import LinuxTools

KIOSK_UNIT = "tether-kiosk.service"
KIOSK_TTY = "tty1"
FIRST_USER_UID = 1000
"""UID_MIN of login.defs on Debian, Ubuntu and Fedora: below it are root and the accounts of system services."""
ROOT_GROUPS = frozenset({"root", "sudo", "wheel", "admin", "docker", "lxd", "disk"})
"""Groups whose members can become root: sudo's administrators (Debian, Fedora, old Ubuntu), the container daemons'
sockets, raw disks. A sudoers rule naming the user alone is not seen here."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unit_word(word: str) -> str:
    """`word` as one quoted word of a systemd command line: backslashes and quotes escaped, `%` and `$` doubled, so
    systemd neither expands a specifier or a variable nor splits it; a control character is refused outright."""
    if _CONTROL.search(word):
        raise HandlerError(f"{word!r} holds a control character and cannot go into a unit file")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def kiosk_unit(argv: Sequence[str], user: str) -> str:
    """The unit file that runs `argv` (cage and its app) as `user` on KIOSK_TTY."""
    return f"""\
# Managed by Tether (SET_KIOSK_APP): it rewrites or removes this file; local changes are lost.
[Unit]
Description=Tether kiosk: cage running one app on {KIOSK_TTY}
After=systemd-user-sessions.service plymouth-quit-wait.service dbus.socket systemd-logind.service
Wants=dbus.socket systemd-logind.service
# The kiosk takes the console's place: the getty on the same terminal is stopped, never run beside it.
Conflicts=getty@{KIOSK_TTY}.service
After=getty@{KIOSK_TTY}.service
ConditionPathExists=/dev/tty0

[Service]
Type=simple
ExecStart={" ".join(unit_word(word) for word in argv)}
User={user}
PAMName=login
TTYPath=/dev/{KIOSK_TTY}
TTYReset=yes
TTYVHangup=yes
TTYVTDisallocate=yes
StandardInput=tty-fail
UtmpIdentifier={KIOSK_TTY}
UtmpMode=user
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def resolve_program(program: str) -> str:
    """The absolute path of the kiosk app: as given, or found on tetherd's PATH; it must be an executable file."""
    path = program if program.startswith("/") else shutil.which(program)
    if path is None:
        raise HandlerError(f"the kiosk app {program} is not found on PATH")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise HandlerError(f"the kiosk app {path} is not an executable file on this device")
    return path


class LinuxKiosk(LinuxTools):
    @property
    def kiosk_unit_path(self) -> Path:
        return self.etc_dir / "systemd" / "system" / KIOSK_UNIT

    async def start_kiosk(self, app: Sequence[str], user: str) -> dict[str, Any]:
        """Write the unit, then `systemctl daemon-reload`, `enable`, `restart`, and read `is-active` back."""
        cage = shutil.which("cage")
        if cage is None:
            raise ToolNotFound("cage (the Wayland kiosk compositor) not found on PATH: install it to run a kiosk")
        command = [resolve_program(app[0]), *app[1:]]
        await self._check_kiosk_user(user)
        path = self.kiosk_unit_path
        await asyncio.to_thread(write_atomically, path, kiosk_unit([cage, "--", *command], user).encode())
        await self.tool("systemctl", "daemon-reload")
        await self.tool("systemctl", "enable", KIOSK_UNIT)
        await self.tool("systemctl", "restart", KIOSK_UNIT)
        state = await self.unit_state(KIOSK_UNIT)
        if state != "active":
            raise ToolFailed(f"{KIOSK_UNIT} is {state} after its restart: see journalctl -u {KIOSK_UNIT}")
        return {"unit": KIOSK_UNIT, "path": str(path), "app": command, "user": user, "state": state}

    async def stop_kiosk(self) -> dict[str, Any]:
        """`systemctl disable --now`, remove the unit file and `daemon-reload`; read `is-active` back either way."""
        path = self.kiosk_unit_path
        removed = path.exists()
        if removed:
            await self.tool("systemctl", "disable", "--now", KIOSK_UNIT)
            try:
                await asyncio.to_thread(path.unlink)
            except OSError as err:
                raise HandlerError(f"cannot remove {path}: {err.strerror or err}") from err
            await self.tool("systemctl", "daemon-reload")
        state = await self.unit_state(KIOSK_UNIT)
        if state in ("active", "activating", "deactivating", "reloading"):
            raise ToolFailed(f"{KIOSK_UNIT} is still {state} after it was stopped")
        return {"unit": KIOSK_UNIT, "path": str(path), "removed": removed, "state": state}

    async def _check_kiosk_user(self, user: str) -> None:
        """`getent passwd USER` and `id -nG USER`: the account must exist (the unit would fail at every start), must
        not be root nor a system account, and must not be in root's group nor one that can become root.

        The operator chooses the program as well as the account, so a system account (a service's: postgres,
        www-data) would hand the kiosk app that service's files and data, beyond what RUN_SHELL_SCRIPT's
        run_scripts_as confines scripts to.
        """
        entry = await self.probe(["getent", "passwd", user])
        fields = entry.stdout_tail.strip().split(":")
        if entry.returncode != 0 or len(fields) < 4 or not (fields[2].isdigit() and fields[3].isdigit()):
            raise HandlerError(f"there is no user {user} on this device: create the kiosk's account first")
        uid, gid = int(fields[2]), int(fields[3])
        if uid == 0:
            raise HandlerError(f"user {user} has uid 0: a kiosk never runs as root")
        if uid < FIRST_USER_UID:
            raise HandlerError(
                f"user {user} is a system account (uid {uid}): a kiosk runs as an ordinary user's account, "
                f"uid {FIRST_USER_UID} or above"
            )
        if gid == 0:
            raise HandlerError(
                f"user {user} has the root group (gid 0) as its own: a kiosk never runs with root's group"
            )
        groups = await self.tool("id", "-nG", user)
        powerful = sorted(set(groups.stdout_tail.split()) & ROOT_GROUPS)
        if powerful:
            raise HandlerError(
                f"user {user} is in the group{'s' if len(powerful) > 1 else ''} {', '.join(powerful)}, which can "
                "become root: a kiosk runs as an account without it"
            )
