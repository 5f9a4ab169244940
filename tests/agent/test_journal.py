"""The journal forgets only what can never matter again, and survives its own file becoming unreadable."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import journal as journal_module
from agent.journal import RETENTION, Journal
from agent.process_groups import ProcessGroup
from shared.messages import Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType

NOW = utc_now()
LONG_AGO = NOW - RETENTION - timedelta(days=1)


class Clock:
    """The journal's notion of now, set by each test: commands are journalled "long ago" through the real code."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = NOW
        monkeypatch.setattr(journal_module, "utc_now", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.db")


def command(command_id: str, start_before: datetime | None) -> Command:
    return Command(
        command_id=command_id,
        operation_id="op",
        device_id="d1",
        operation_type=OperationType.LOCK,
        issued_at=NOW,
        start_before=start_before,
    )


def finished(journal: Journal, command_id: str, *, start_before: datetime | None, delivered: bool = True) -> None:
    assert journal.record_received(command(command_id, start_before))
    journal.record_finished(
        StatusReport(command_id=command_id, device_id="d1", status=DeviceStatus.SUCCESSFUL, timestamp=NOW)
    )
    if delivered:
        journal.mark_delivered(command_id)


def test_old_delivered_expired_commands_are_forgotten_when_another_finishes(journal: Journal, clock: Clock) -> None:
    clock.now = LONG_AGO
    finished(journal, "expired", start_before=LONG_AGO + timedelta(minutes=10))
    finished(journal, "unsigned", start_before=None)
    clock.now = NOW

    finished(journal, "today", start_before=NOW + timedelta(minutes=10))

    assert journal.get("expired") is None
    assert journal.get("unsigned") is None
    assert journal.get("today") is not None


def test_what_may_still_matter_is_kept(journal: Journal, clock: Clock) -> None:
    clock.now = LONG_AGO
    finished(journal, "undelivered", start_before=LONG_AGO, delivered=False)  # its status must still go out
    finished(journal, "window", start_before=NOW + timedelta(days=60))  # could still arrive and start
    finished(journal, "skew", start_before=NOW - timedelta(hours=2))  # within a day of its start_before
    clock.now = NOW - timedelta(days=2)
    finished(journal, "recent", start_before=NOW - timedelta(days=2))  # a duplicate gets its status again
    clock.now = NOW

    finished(journal, "trigger", start_before=None)

    for command_id in ("undelivered", "window", "skew", "recent", "trigger"):
        assert journal.get(command_id) is not None, command_id
    assert [report.command_id for report in journal.undelivered()] == ["undelivered"]


def test_a_forgotten_command_arriving_again_is_new_to_the_journal(journal: Journal, clock: Clock) -> None:
    """What the runner then does with it: refuse it as expired (its start_before passed), never run it twice."""
    clock.now = LONG_AGO
    finished(journal, "old", start_before=datetime(2020, 1, 1, tzinfo=UTC))
    assert not journal.record_received(command("old", datetime(2020, 1, 1, tzinfo=UTC)))  # a duplicate, while kept
    clock.now = NOW
    finished(journal, "now", start_before=None)

    assert journal.record_received(command("old", datetime(2020, 1, 1, tzinfo=UTC)))


def test_process_groups_are_recorded_for_their_command_until_they_end(journal: Journal) -> None:
    first, second = ProcessGroup(10, 100, "boot"), ProcessGroup(11, 110, "boot")
    journal.group_ledger("c1").started(first)
    journal.group_ledger("c2").started(second)
    journal.group_ledger("c1").ended(first)
    assert journal.process_groups() == [("c2", second)]
