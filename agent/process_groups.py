"""Process groups a command started, written down so that an agent killed without cleaning up ends them on restart.

Outside systemd (or with a KillMode that spares them), a SIGKILLed agent leaves its commands' process groups running:
a script would go on after its command was reported FAILED. `agent/process.py` records each group it starts in the
ledger of the command it runs for; at start-up the runner ends every group still recorded. A group is named by its id,
its leader's start time in clock ticks after boot and the kernel's boot id, so that an unrelated group which reused
the id is never signalled.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROC = Path("/proc")
BOOT_ID = PROC / "sys/kernel/random/boot_id"
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    pgid: int
    start_ticks: int
    """The leader's start time in clock ticks after boot (/proc/<pid>/stat field 22): unaffected by clock changes."""
    boot_id: str


class GroupLedger(Protocol):
    """Where the groups of the command being run are written down (the journal)."""

    def started(self, group: ProcessGroup) -> None: ...

    def ended(self, group: ProcessGroup) -> None: ...


LEDGER: ContextVar[GroupLedger | None] = ContextVar("process_group_ledger", default=None)
"""Set by the runner for a command's handler task; processes started outside a command are not recorded."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What /proc/<pid>/stat says of a process that matters here."""

    pgrp: int
    start_ticks: int
    zombie: bool


def parse_stat(text: str) -> ProcStat:
    """Read /proc/<pid>/stat; ValueError if it is not one."""
    # Field 2, the command name, is in parentheses and may itself hold spaces and parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    if len(fields) < 20:
        raise ValueError("too few fields")
    # fields[0] is field 3 (the state), so field n is fields[n - 3].
    return ProcStat(pgrp=int(fields[2]), start_ticks=int(fields[19]), zombie=fields[0] in ("Z", "X"))


def _stat(pid: int) -> ProcStat | None:
    """None once the process is gone (or unreadable)."""
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError):
        return None


def boot_id() -> str:
    return BOOT_ID.read_text().strip()


def identify(pid: int) -> ProcessGroup | None:
    """The group process `pid` leads, named for good; None if the process has gone (or there is no /proc)."""
    stat = _stat(pid)
    try:
        return None if stat is None else ProcessGroup(pgid=pid, start_ticks=stat.start_ticks, boot_id=boot_id())
    except OSError:
        return None


@contextlib.contextmanager
def recorded(pid: int) -> Iterator[None]:
    """Keep the group `pid` leads written down in the current ledger while the block runs.

    Called as soon as the process has started: the agent killed in between is the one case left unrecorded.
    """
    ledger = LEDGER.get()
    group = None if ledger is None else identify(pid)
    if ledger is None or group is None:  # no command to record it for, or the process has already gone
        yield
        return
    ledger.started(group)
    try:
        yield
    finally:
        ledger.ended(group)


def _members(pgid: int) -> list[ProcStat]:
    """The processes of group `pgid` that still run (zombies run nothing, and only their parent can reap them)."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat.pgrp == pgid and not stat.zombie:
                members.append(stat)
    return members


def still_ours(group: ProcessGroup) -> bool:
    """Whether the processes now in group `group.pgid` are the ones recorded, not an unrelated group reusing its id.

    While a group exists its id is never given to a new process (POSIX), so a live leader with another start time
    means the recorded group has ended. With the leader gone, every member must have started after it did.
    """
    if group.pgid <= 1 or group.pgid in (os.getpgrp(), os.getsid(0)):
        # Never a command's: those get a session of their own. killpg(0) would signal the agent's own group, and 1
        # is init's; a row naming one of these (planted, or corrupt) must not end the agent, its shell or the host.
        return False
    try:
        if group.boot_id != boot_id():
            return False  # the machine rebooted: the recorded group ended with the old boot
    except OSError:
        return False  # without /proc nothing can be told apart: signal nothing
    members = _members(group.pgid)
    leader = _stat(group.pgid)
    if not members or (leader is not None and leader.start_ticks != group.start_ticks):
        return False
    return all(member.start_ticks >= group.start_ticks for member in members)


async def end_orphaned(group: ProcessGroup, grace_s: float) -> bool:
    """SIGTERM what is left of a recorded group, and SIGKILL whatever survives `grace_s`; False if nothing was left."""
    if not still_ours(group):
        return False
    _signal(group.pgid, signal.SIGTERM)
    await _until_empty(group.pgid, grace_s)
    if _members(group.pgid):
        _signal(group.pgid, signal.SIGKILL)
        await _until_empty(group.pgid, grace_s)
    return True


async def _until_empty(pgid: int, limit_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            while _members(pgid):  # noqa: ASYNC110 (nothing notifies us when a group empties)
                await asyncio.sleep(_POLL_S)


def _signal(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
