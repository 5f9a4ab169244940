"""The journal forgets only what can never matter again: delivered, a month old, and past its start_before."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.journal import RETENTION, Journal
from shared.messages import Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType

LONG_AGO = utc_now() - RETENTION - timedelta(days=1)


def finished(journal: Journal, command_id: str, *, start_before: datetime | None, delivered: bool = True) -> None:
    command = Command(
        command_id=command_id,
        operation_id="op",
        device_id="d1",
        operation_type=OperationType.LOCK,
        issued_at=utc_now(),
        start_before=start_before,
    )
    assert journal.record_received(command)
    journal.record_finished(
        StatusReport(command_id=command_id, device_id="d1", status=DeviceStatus.SUCCESSFUL, timestamp=utc_now())
    )
    if delivered:
        journal.mark_delivered(command_id)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.db")


def backdate(journal: Journal, command_id: str, received: datetime) -> None:
    journal._conn.execute(
        "UPDATE commands SET received_at = ? WHERE command_id = ?", (received.isoformat(), command_id)
    )


def test_old_delivered_expired_commands_are_forgotten_when_another_finishes(journal: Journal) -> None:
    finished(journal, "expired", start_before=LONG_AGO + timedelta(minutes=10))
    finished(journal, "unsigned", start_before=None)
    for command_id in ("expired", "unsigned"):
        backdate(journal, command_id, LONG_AGO)

    finished(journal, "today", start_before=utc_now() + timedelta(minutes=10))

    assert journal.get("expired") is None
    assert journal.get("unsigned") is None
    assert journal.get("today") is not None


def test_what_may_still_matter_is_kept(journal: Journal) -> None:
    finished(journal, "undelivered", start_before=LONG_AGO, delivered=False)  # its status must still go out
    finished(journal, "recent", start_before=utc_now() - timedelta(days=2))  # a duplicate gets its status again
    finished(journal, "window", start_before=utc_now() + timedelta(days=60))  # could still arrive and start
    finished(journal, "skew", start_before=utc_now() - timedelta(hours=2))  # within a day of its start_before
    for command_id in ("undelivered", "window", "skew"):
        backdate(journal, command_id, LONG_AGO)

    finished(journal, "trigger", start_before=None)

    for command_id in ("undelivered", "recent", "window", "skew", "trigger"):
        assert journal.get(command_id) is not None, command_id
    assert [report.command_id for report in journal.undelivered()] == ["undelivered"]


def test_a_forgotten_command_arriving_again_is_new_to_the_journal(journal: Journal) -> None:
    """What the runner then does with it: refuse it as expired (its start_before passed), never run it twice."""
    finished(journal, "old", start_before=datetime(2020, 1, 1, tzinfo=UTC))
    backdate(journal, "old", LONG_AGO)
    finished(journal, "now", start_before=None)
    assert journal.get("old") is None
