"""The journal forgets only what can never matter again, and survives its own file becoming unreadable."""

import os
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import journal as journal_module
from agent.errors import JournalError
from agent.journal import RETENTION, Journal, JournalLoss
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


# --- a journal that cannot be read ----------------------------------------------------------------------------------


def sound_journal(path: Path) -> None:
    """A journal with a few commands, closed (its write-ahead log folded into the file)."""
    journal = Journal(path)
    for number in range(3):
        journal.record_received(command(f"c{number}", NOW + timedelta(hours=1)))
    journal.close()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(16384))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:4096])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _wal_directory(path: Path) -> None:
    Path(f"{path}-wal").mkdir()


def _not_a_journal(path: Path) -> None:
    path.unlink()
    sqlite3.connect(path).executescript("CREATE TABLE something_else (x); INSERT INTO something_else VALUES (1);")


@pytest.mark.parametrize("damage", [_garbage, _truncated, _empty, _directory, _wal_directory, _not_a_journal])
def test_an_unreadable_journal_is_kept_aside_and_a_fresh_one_records_the_loss(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "journal.db"
    sound_journal(path)
    damage(path)
    damaged = path.read_bytes() if path.is_file() else None
    before = utc_now()

    journal = Journal(path)

    assert journal.loss is not None
    assert not journal.loss.settled
    assert before <= journal.loss.lost_at <= utc_now()
    kept = Path(journal.loss.kept)
    assert re.fullmatch(r"journal\.db\.lost-\d{8}T\d{6}Z", kept.name)
    assert kept.read_bytes() == damaged if damaged is not None else kept.exists()
    assert journal.get("c0") is None
    assert journal.record_received(command("c0", None))  # the fresh journal works
    journal.close()
    reopened = Journal(path)  # a sound one
    assert reopened.loss == JournalLoss(journal.loss.lost_at, str(kept), settled=False)
    reopened.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(kept.name)) == ["journal.db"]


def test_a_sound_journal_and_a_first_start_have_no_loss(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    assert Journal(path).loss is None
    sound_journal(path)
    journal = Journal(path)
    assert journal.loss is None
    assert journal.get("c2") is not None


def test_a_journal_missing_beside_a_kept_lost_one_was_lost_on_the_way_to_its_replacement(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    (tmp_path / "journal.db.lost-20261201T000000Z").write_bytes(b"garbage")
    loss = Journal(path).loss
    assert loss is not None
    assert loss.kept == str(tmp_path / "journal.db.lost-20261201T000000Z")


def test_a_journal_another_agent_holds_is_never_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    sound_journal(path)
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError, match="cannot open the journal"):
            Journal(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.db"]
    assert Journal(path).get("c1") is not None


def in_doubt_after(journal: Journal, issued_at: datetime) -> bool:
    return journal.in_doubt(command("x", None).model_copy(update={"issued_at": issued_at}))


def test_after_a_loss_commands_are_in_doubt_until_it_settles_and_those_issued_before_it_for_good(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    _garbage(path)
    journal = Journal(path)
    assert journal.loss is not None
    before, after = journal.loss.lost_at - timedelta(seconds=1), journal.loss.lost_at + timedelta(seconds=1)
    assert in_doubt_after(journal, before)
    assert in_doubt_after(journal, after)

    journal.settle_loss()
    journal.close()
    journal = Journal(path)

    assert journal.loss is not None
    assert journal.loss.settled
    assert in_doubt_after(journal, before)
    assert not in_doubt_after(journal, after)
    assert not in_doubt_after(Journal(tmp_path / "other.db"), before)  # no loss, no doubt


def test_process_groups_are_recorded_for_their_command_until_they_end(journal: Journal) -> None:
    first, second = ProcessGroup(10, 100, "boot"), ProcessGroup(11, 110, "boot")
    journal.group_ledger("c1").started(first)
    journal.group_ledger("c2").started(second)
    journal.group_ledger("c1").ended(first)
    assert journal.process_groups() == [("c2", second)]


def test_a_loss_recorded_by_a_clock_running_ahead_stops_doubting_new_commands_once_it_settles_on_a_set_clock(
    tmp_path: Path, clock: Clock
) -> None:
    """A device that boots with its clock a year ahead (no RTC, no time sync yet) recorded the loss a year in the
    future: every command issued in the year after was failed as 'journal lost'. No loss happened after the moment
    it settles, so its time is brought back to that moment, once the clock has been set."""
    path = tmp_path / "journal.db"
    _garbage(path)
    clock.now = NOW + timedelta(days=365)
    journal = Journal(path)
    clock.now = NOW  # set by NTP before the connection that settles the loss
    journal.settle_loss()
    journal.close()
    journal = Journal(path)
    assert in_doubt_after(journal, NOW - timedelta(seconds=1))
    assert not in_doubt_after(journal, NOW + timedelta(seconds=1))
