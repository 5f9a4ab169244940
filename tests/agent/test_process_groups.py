"""agent.process_groups against real process groups: recorded while they run, ended only if still the recorded one."""

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import process, process_groups
from agent.process_groups import LEDGER, ProcessGroup, parse_stat
from tests.fakes import is_running

TERM_IGNORING_GROUP = "(trap '' TERM; exec sleep 60) & echo $! > \"$CHILD\"; wait"
"""A shell and a child that ignores SIGTERM (an ignored signal stays ignored across exec)."""


class Ledger:
    def __init__(self) -> None:
        self.events: list[tuple[str, ProcessGroup]] = []

    def started(self, group: ProcessGroup) -> None:
        self.events.append(("started", group))

    def ended(self, group: ProcessGroup) -> None:
        self.events.append(("ended", group))


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A shell leading its own process group, with a child that ignores SIGTERM: (the shell, the child's pid)."""
    child_file = tmp_path / "child.pid"
    leader = subprocess.Popen(
        ["sh", "-c", TERM_IGNORING_GROUP], start_new_session=True, env={**os.environ, "CHILD": str(child_file)}
    )
    deadline = time.monotonic() + 10
    while not child_file.exists() or not child_file.read_text().strip():
        assert leader.poll() is None, "the group's leader ended early"
        assert time.monotonic() < deadline, "the group's child never started"
        time.sleep(0.01)
    yield leader, int(child_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()


def recorded(pid: int) -> ProcessGroup:
    ledger = Ledger()
    token = LEDGER.set(ledger)
    try:
        with process_groups.recorded(pid):
            pass
    finally:
        LEDGER.reset(token)
    return ledger.events[0][1]


def test_a_stat_line_is_read_whatever_the_command_name_holds() -> None:
    line = "4242 (a) b (c) S 1 4240 4240 0 -1 4194560 99 0 0 0 0 0 0 0 20 0 1 0 777 1000 50 18446744073709551615 0"
    assert parse_stat(line) == process_groups.ProcStat(pgrp=4240, start_ticks=777, zombie=False)
    assert parse_stat(line.replace(") S ", ") Z ")).zombie


def test_a_recorded_group_left_running_is_ended_by_sigkill_if_sigterm_is_not_enough(
    orphan: tuple[subprocess.Popen[bytes], int],
) -> None:
    leader, child = orphan
    group = recorded(leader.pid)

    assert asyncio.run(process_groups.end_orphaned(group, grace_s=0.3))

    leader.wait(5)
    assert not is_running(child)


def test_a_group_whose_id_was_reused_is_left_alone(orphan: tuple[subprocess.Popen[bytes], int]) -> None:
    leader, child = orphan
    group = recorded(leader.pid)
    for other in (
        dataclasses.replace(group, start_ticks=group.start_ticks - 1),  # another process now has the leader's pid
        dataclasses.replace(group, boot_id="another boot"),  # the machine rebooted since
    ):
        assert not asyncio.run(process_groups.end_orphaned(other, grace_s=0.3))
    assert leader.poll() is None
    assert is_running(child)


def test_a_group_that_has_ended_is_not_signalled(orphan: tuple[subprocess.Popen[bytes], int]) -> None:
    leader, child = orphan
    group = recorded(leader.pid)
    os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()
    deadline = time.monotonic() + 5
    while is_running(child):
        assert time.monotonic() < deadline, "SIGKILL did not end the child"
        time.sleep(0.01)
    assert not asyncio.run(process_groups.end_orphaned(group, grace_s=0.3))


def test_processes_run_for_a_command_are_recorded_while_they_run_and_others_are_not() -> None:
    async def go() -> list[tuple[str, ProcessGroup]]:
        await process.run(["true"], timeout=5)  # outside a command: no ledger
        ledger = Ledger()
        LEDGER.set(ledger)
        result = await process.run(["sh", "-c", "echo $$; sleep 0.2"], timeout=5)
        assert ledger.events
        assert ledger.events[0][1].pgid == int(result.stdout_tail)
        return ledger.events

    events = asyncio.run(go())
    assert [kind for kind, _ in events] == ["started", "ended"]
    assert events[0][1] == events[1][1]
    assert events[0][1].boot_id == process_groups.boot_id()


def _as_recorded(pgid: int) -> ProcessGroup:
    """A journal row naming group `pgid` exactly as a genuine record would: its leader's real start time, this boot."""
    stat = Path(f"/proc/{pgid}/stat")
    start_ticks = parse_stat(stat.read_text()).start_ticks if stat.exists() else 0
    return ProcessGroup(pgid=pgid, start_ticks=start_ticks, boot_id=process_groups.boot_id())


@pytest.mark.parametrize(
    "pgid",
    [
        pytest.param(0, id="group 0: killpg(0) signals the agent's own group"),
        pytest.param(1, id="init's group"),
        pytest.param(os.getpgrp(), id="the agent's own group"),
        pytest.param(os.getsid(0), id="the group of the agent's session leader"),
    ],
)
def test_a_journal_row_naming_a_group_the_agent_never_started_for_a_command_is_never_signalled(pgid: int) -> None:
    """A planted or corrupted row, however well it names a live group: still_ours is what end_orphaned asks before any
    signal, so it is asked here (calling end_orphaned on the old code would have signalled this very test)."""
    assert not process_groups.still_ours(_as_recorded(pgid))
