"""The desktop of a Linux device's graphical sessions: the wallpaper (GNOME) and the lockdown (pam_nologin + lock)."""

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, UnsupportedOperation
from agent.files import write_atomically
from agent.platforms.linux_session import LinuxSessions, one_per_user

WALLPAPER_DIR = Path("/usr/local/share/backgrounds/tether")
"""World-readable, as the session's user must read the image; outside any user's home, which the user could edit."""
WALLPAPER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".webp": b"RIFF"}
"""How each format's file begins; a WebP also has `WEBP` at byte 8."""
WALLPAPER_PREFIX = "wallpaper-"
BACKGROUND_SCHEMA = "org.gnome.desktop.background"
BACKGROUND_KEYS = ("picture-uri", "picture-uri-dark")
"""GNOME 42+ shows picture-uri-dark in its dark style; both are set so the style does not matter."""
LOCKDOWN_MESSAGE = "Logins are disabled on this device by its administrator."


class LinuxDesktop(LinuxSessions):
    def __init__(self, *args: Any, wallpaper_dir: Path = WALLPAPER_DIR, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wallpaper_dir = wallpaper_dir

    async def set_wallpaper(self, image: Path) -> dict[str, Any]:
        """Store the image under a name of its content (GNOME reloads only a changed URI), set it with gsettings
        in every graphical session's user, read it back, then delete the wallpapers stored before it."""
        suffix = image.suffix.lower()
        if suffix not in WALLPAPER_SUFFIXES:
            raise HandlerError(
                f"cannot show {image.name} as a wallpaper: the URL must name a "
                f"{', '.join(sorted(WALLPAPER_SUFFIXES))} file"
            )
        sessions = await self.graphical_sessions()
        if not sessions:
            raise HandlerError("no graphical session is logged in to show a wallpaper in")
        for session in sessions:
            if not session.gnome:
                raise UnsupportedOperation(
                    f"the wallpaper of {session.named()} cannot be set: only GNOME's (gsettings) is supported"
                )
        content = await asyncio.to_thread(image.read_bytes)
        if not is_image_of(suffix, content):
            raise HandlerError(
                f"{image.name} is not a {suffix[1:]} image: its first bytes are {content[:12]!r}, so GNOME would read "
                "it as whatever format they say"
            )
        await asyncio.to_thread(readable_directory, self.wallpaper_dir)
        stored = self.wallpaper_dir / f"{WALLPAPER_PREFIX}{hashlib.sha256(content).hexdigest()[:16]}{suffix}"
        await asyncio.to_thread(write_atomically, stored, content)
        uri = stored.as_uri()
        users = one_per_user(sessions)
        for session in users:
            for key in BACKGROUND_KEYS:
                await self.as_session_user(session, "gsettings", "set", BACKGROUND_SCHEMA, key, uri)
            shown = await self.as_session_user(session, "gsettings", "get", BACKGROUND_SCHEMA, BACKGROUND_KEYS[0])
            if shown.stdout_tail.strip() != f"'{uri}'":
                raise HandlerError(
                    f"{session.named()} still shows {shown.stdout_tail.strip() or 'nothing'} after setting {uri}"
                )
        for older in self.wallpaper_dir.glob(f"{WALLPAPER_PREFIX}*"):
            if older != stored:
                older.unlink(missing_ok=True)
        return {"path": str(stored), "uri": uri, "sessions": [session.describe() for session in users]}

    async def set_lockdown(self, enabled: bool, message: str) -> dict[str, Any]:
        """Enabled: write `nologin` (pam_nologin then refuses every login but root's, showing its text) and lock the
        graphical sessions already open. Disabled: remove it."""
        path = self.etc_dir / "nologin"
        if not enabled:
            try:
                await asyncio.to_thread(path.unlink)
            except FileNotFoundError:
                removed = False
            except OSError as err:
                raise HandlerError(f"cannot remove {path}: {err.strerror or err}") from err
            else:
                removed = True
            return {"enabled": False, "nologin": str(path), "removed": removed}
        text = (message or LOCKDOWN_MESSAGE).rstrip("\n") + "\n"
        await asyncio.to_thread(write_atomically, path, text.encode())
        sessions = await self.graphical_sessions()
        try:
            locked = await self.lock_graphical(sessions) if sessions else []
        except HandlerError as err:
            raise HandlerError(f"new logins are refused ({path} written), but {err}", result=err.result) from err
        return {"enabled": True, "nologin": str(path), "sessions": locked}


def readable_directory(path: Path) -> None:
    """Make `path`, and each missing directory above it, readable by every user (0755) whatever tetherd's umask (077),
    so the session's user can read what is stored there; then refuse it unless it is a directory (not a link) of
    tetherd's own user that no one else may change, as one planted before tetherd first made it could be."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    try:
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            directory.chmod(0o755)
        status = os.lstat(path)
    except OSError as err:
        raise HandlerError(f"cannot make {path}: {err.strerror or err}") from err
    problem = None
    if not stat.S_ISDIR(status.st_mode):
        problem = "not a directory (a symbolic link or a file)"
    elif status.st_uid != os.geteuid():
        problem = f"owned by uid {status.st_uid}, not by tetherd's user"
    elif status.st_mode & 0o022:
        problem = f"writable by others (mode {stat.S_IMODE(status.st_mode):04o})"
    if problem is not None:
        raise HandlerError(f"cannot store the wallpaper in {path}: it is {problem}")
    if stat.S_IMODE(status.st_mode) != 0o755:
        try:
            path.chmod(0o755)  # made 0700 by an agent before this check
        except OSError as err:
            raise HandlerError(f"cannot make {path} readable: {err.strerror or err}") from err


def is_image_of(suffix: str, content: bytes) -> bool:
    """Whether `content` begins as a `suffix` file does: GNOME's loader (gdk-pixbuf) picks the format from the content,
    so a name alone would let any format it has a loader for through."""
    return content.startswith(_SIGNATURES[suffix]) and (suffix != ".webp" or content[8:12] == b"WEBP")
