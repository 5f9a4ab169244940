"""Recording fake executables first on PATH, so tests reach the OS edge without touching the machine."""

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

DANGEROUS = (
    "systemctl",
    "loginctl",
    "nmcli",
    "busctl",
    "shutdown",
    "reboot",
    "poweroff",
    "halt",
    "locale-gen",
    "localedef",
    "wall",
    "who",
)
"""Always faked, so that a test that forgets to fake one of them still cannot reboot or cut off this machine, write
to its terminals (wall) or depend on who is logged in to it (who)."""


class FakeTools:
    """A directory of small `#!/bin/sh` tools that log their argv (NUL-separated, count first) and then behave."""

    @classmethod
    def on_path(cls, directory: Path, monkeypatch: pytest.MonkeyPatch) -> "FakeTools":
        """Fakes in `directory`, first on PATH for the test; the DANGEROUS tools are already there, succeeding."""
        tools = cls(directory)
        for name in DANGEROUS:
            tools.add(name)
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
        return tools

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / "calls.log"
        directory.mkdir(parents=True, exist_ok=True)

    def add(
        self,
        name: str,
        *,
        exit_code: int = 0,
        stdout: str = "",
        stderr: str = "",
        sleep: float = 0.0,
        script: str = "",
    ) -> Path:
        """Write the fake `name`: log argv, print `stdout`/`stderr`, run `script`, sleep, exit `exit_code`."""
        lines = [
            "#!/bin/sh",
            f"""printf '%s\\0' "$#" "${{0##*/}}" "$@" >> {shlex.quote(str(self.log))}""",
            # Builtins only, so the fake works whatever PATH it is run with.
            f"printf '%s' {shlex.quote(stdout)}",
            f"printf '%s' {shlex.quote(stderr)} >&2",
            script,
            f"sleep {sleep}" if sleep else "",
            f"exit {exit_code}",
        ]
        path = self.directory / name
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    def calls(self, name: str | None = None) -> list[list[str]]:
        """Every recorded argv, oldest first, with the tool's name as argv[0]; only `name`'s if given."""
        if not self.log.exists():
            return []
        fields = self.log.read_bytes().decode().split("\0")
        calls, i = [], 0
        while i < len(fields) - 1:
            count = int(fields[i])
            calls.append(fields[i + 1 : i + 2 + count])
            i += count + 2
        return [argv for argv in calls if name is None or argv[0] == name]


def is_running(pid: int) -> bool:
    """Whether `pid` is alive; a zombie counts as gone (here PID 1 may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


LIST_SESSIONS = ["loginctl", "list-sessions", "--no-legend"]
PROPERTIES = ["Id", "Name", "User", "Type", "State", "Remote", "Display", "TTY", "Desktop", "LockedHint"]


def show_session(session_id: str) -> list[str]:
    """How the agent asks loginctl about one session."""
    return ["loginctl", "show-session", session_id, *[word for name in PROPERTIES for word in ("-p", name)]]


RUNUSER = 'shift 3; exec "$@"'
"""A fake runuser's script: drop `-u USER --` and run the rest (`env VAR=... TOOL ...`) as this user."""


@dataclass(frozen=True)
class FakeSession:
    """A logind session as a fake loginctl describes it."""

    id: str
    user: str = "kiosk"
    uid: int = 1000
    type: str = "wayland"
    desktop: str = "GNOME"
    display: str = ""
    tty: str = ""
    remote: bool = False
    locks: bool = True
    """Whether its screen locker sets LockedHint once `loginctl lock-sessions` has run."""

    def shown(self) -> str:
        lines = [
            f"Id={self.id}",
            f"Name={self.user}",
            f"User={self.uid}",
            f"Type={self.type}",
            "State=active",
            f"Remote={'yes' if self.remote else 'no'}",
            f"Display={self.display}",
            f"TTY={self.tty}",
            f"Desktop={self.desktop}",
        ]
        return "\\n".join(lines) + "\\n"


def logind(*sessions: FakeSession, lock_s: float = 0.0) -> str:
    """A fake loginctl's script: lists `sessions`, shows each, and after `lock-sessions` (which takes `lock_s`) shows
    LockedHint=yes for those whose locker works (builtins only, but for that sleep)."""
    listing = "".join(f"{s.id} {s.uid} {s.user} seat0 {s.tty}\\n" for s in sessions)
    hint = {s.id: "locked" if s.locks else "echo no" for s in sessions}
    shows = "\n".join(
        f"""    {shlex.quote(s.id)}) printf '{s.shown()}LockedHint=%s\\n' "$({hint[s.id]})" ;;""" for s in sessions
    )
    return f"""locked() {{ if [ -e "${{0%/*}}/locked" ]; then echo yes; else echo no; fi; }}
case "$1" in
  list-sessions) printf '{listing}' ;;
  lock-sessions) : > "${{0%/*}}/locked"{f"; sleep {lock_s}" if lock_s else ""} ;;
  show-session)
    case "$2" in
{shows}
      *) echo "Failed to get session: No session '$2' known" >&2; exit 1 ;;
    esac ;;
esac"""


GSETTINGS = """case "$1" in
  set) printf '%s' "$4" > "${0%/*}/gsettings.$3" ;;
  get) read -r value < "${0%/*}/gsettings.$3"; printf "'%s'\\n" "$value" ;;
esac"""
"""A fake gsettings's script that keeps what `set SCHEMA KEY VALUE` set and `get SCHEMA KEY` prints it quoted."""
