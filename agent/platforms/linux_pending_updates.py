"""What each package manager says is waiting to be upgraded, read strictly: a line of an unknown shape is an error,
never a package silently left out."""

import re
from dataclasses import dataclass

from agent.errors import HandlerError


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    name: str
    current: str | None
    """The installed version; None where the tool does not print it (then read from the installed packages)."""
    available: str
    security: bool = False
    """Whether the new version comes from a security repository, where the tool says so (apt)."""


_APT_INST = re.compile(r"Inst (\S+) (?:\[([^\]\s]+)\] )?\((\S+) ([^()]*)\)(?: \[[^\]]*\])?")
"""`Inst NAME [CURRENT] (AVAILABLE ORIGIN, ORIGIN [ARCH])`, and maybe a trailing `[BROKEN...]` list."""


def _unreadable(tool: str, line: str) -> HandlerError:
    return HandlerError(f"cannot read {tool}'s list of updates: unexpected line {line.strip()[:120]!r}")


def parse_apt(text: str) -> list[PendingUpdate]:
    """`apt-get -s upgrade`: one `Inst` line per package it would upgrade; its other lines are chatter."""
    updates = []
    for line in text.splitlines():
        if not line.startswith("Inst "):
            continue
        match = _APT_INST.fullmatch(line.rstrip())
        if match is None:
            raise _unreadable("apt-get", line)
        name, current, available, origins = match.groups()
        updates.append(PendingUpdate(name, current, available, security="-security" in origins))
    return updates


def parse_dnf(text: str) -> list[PendingUpdate]:
    """`dnf check-update -q`: `NAME.ARCH VERSION REPOSITORY`, a long name wrapped onto a line of its own; the
    `Obsoleting Packages` section that may follow repeats packages already listed."""
    updates = []
    pending_name: str | None = None
    for line in text.splitlines():
        fields = line.split()
        if not fields or line.startswith("Security: "):  # dnf's notes on installed security updates
            continue
        if line.strip().lower() == "obsoleting packages":
            break
        if pending_name is not None:
            fields = [pending_name, *fields]
            pending_name = None
        if len(fields) == 1 and "." in fields[0]:
            pending_name = fields[0]
            continue
        if len(fields) != 3 or "." not in fields[0]:
            raise _unreadable("dnf", line)
        updates.append(PendingUpdate(fields[0].rsplit(".", 1)[0], None, fields[1]))
    if pending_name is not None:
        raise _unreadable("dnf", pending_name)
    return updates


_ZYPPER_COLUMNS = ("Name", "Current Version", "Available Version")


def parse_zypper(text: str) -> list[PendingUpdate]:
    """`zypper list-updates`: a `|` table under a header naming its columns (in the C locale), or `No updates found.`"""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if all(f"| {c} " in f"{line} " for c in _ZYPPER_COLUMNS)), None)
    if header is None:
        if any(line.strip() == "No updates found." for line in lines):
            return []
        raise HandlerError("cannot read zypper's list of updates: it printed no table and not 'No updates found.'")
    columns = [column.strip() for column in lines[header].split("|")]
    name, current, available = (columns.index(column) for column in _ZYPPER_COLUMNS)
    updates = []
    for line in lines[header + 1 :]:
        if not line.strip() or re.fullmatch(r"[-+]+", line.strip()):
            continue
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != len(columns) or not all(fields[i] for i in (name, current, available)):
            raise _unreadable("zypper", line)
        updates.append(PendingUpdate(fields[name], fields[current], fields[available]))
    return updates


_APK_LINE = re.compile(r"(\S+)-([^-\s]+-r\d+)\s+<\s+(\S+)")


def parse_apk(text: str) -> list[PendingUpdate]:
    """`apk version -l '<'`: an `Installed: Available:` header, then `NAME-VERSION-rN < VERSION-rN` per package."""
    updates = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("Installed:"):
            continue
        match = _APK_LINE.fullmatch(line.strip())
        if match is None:
            raise _unreadable("apk", line)
        name, current, available = match.groups()
        updates.append(PendingUpdate(name, current, available))
    return updates
