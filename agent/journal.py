"""The agent's on-disk journal: every command id it has seen, how far it got, and final statuses not yet delivered.

It is what makes a command run at most once across duplicates, retained redelivery and agent restarts, and what
keeps a final status that could not be published until the broker is reachable again. A finished command whose
status was delivered is forgotten once it is RETENTION old and can no longer start (its `start_before` a day past):
a copy arriving after that is refused as expired, so the journal stays the size of a month of work, not of the
device's life.

A journal that cannot be read is replaced by a fresh one (agent/journal_file.py) that records the loss: from then on a
command it has not seen is in doubt, and failed as JOURNAL_LOST rather than run, if it was issued before the loss or
arrives before the loss has settled (see `JournalLoss`). It also records the process groups each running command
started (agent/process_groups.py), so that an agent killed while they run ends them when it starts again.
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from agent import journal_file
from agent.process_groups import ProcessGroup
from shared.messages import Command, StatusReport, decode, encode, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    command TEXT NOT NULL,
    boot_id TEXT,
    final_report TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_stage ON commands (stage, received_at);
CREATE TABLE IF NOT EXISTS process_groups (
    boot_id TEXT NOT NULL,
    pgid INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    command_id TEXT NOT NULL,
    PRIMARY KEY (boot_id, pgid, start_ticks)
);
CREATE TABLE IF NOT EXISTS journal_loss (
    lost_at TEXT NOT NULL,
    kept TEXT NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0
);
"""

JOURNAL_LOST = (
    "journal lost: the agent's journal could not be read, and this command may have run before, so it is not run again"
)


RETENTION = timedelta(days=30)
"""How long a delivered final status is kept, at least: a duplicate within it gets the status again."""
EXPIRY_MARGIN = timedelta(days=1)
"""Kept at least this long past `start_before`, for a device clock that runs behind."""


class Stage(StrEnum):
    QUEUED = "queued"
    EXECUTING = "executing"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Entry:
    command: Command
    stage: Stage
    boot_id: str | None
    final_report: StatusReport | None
    delivered: bool


@dataclass(frozen=True, slots=True)
class JournalLoss:
    """The journal before this one was lost at `lost_at` (the device's clock), and kept at `kept`.

    The controller keeps a command retained on the broker until it has the command's final status, and the broker
    sends every retained command again on each connect: commands the lost journal had seen, and perhaps run, come
    back looking new. A command is in doubt if it was issued before the loss, or arrives before the loss has
    settled: until a connection has stayed quiet for a while after subscribing, so that everything the broker still
    held for the device has been delivered. The first rule needs no clock agreement for that burst; the second covers
    a burst that paused, given clocks that roughly agree.
    """

    lost_at: datetime
    kept: str
    settled: bool

    def in_doubt(self, command: Command) -> bool:
        """Whether `command`, new to this journal, may have been received before the loss."""
        return not self.settled or command.issued_at <= self.lost_at


class Journal:
    def __init__(self, path: Path) -> None:
        self._conn = journal_file.connect(path, SCHEMA, _initialize, _initialize_after_loss)
        row = self._conn.execute("SELECT lost_at, kept, settled FROM journal_loss ORDER BY rowid DESC").fetchone()
        self.loss = None if row is None else JournalLoss(datetime.fromisoformat(row[0]), row[1], bool(row[2]))
        """The loss of the journal before this one, if there was one."""

    def close(self) -> None:
        self._conn.close()

    def in_doubt(self, command: Command) -> bool:
        """Whether a command new to this journal may have run before the journal was lost (see JournalLoss)."""
        return self.loss is not None and self.loss.in_doubt(command)

    def settle_loss(self) -> None:
        """Every command the broker held for the device at the loss has been seen: only the issue time decides now.

        The loss cannot have happened after now: a loss time ahead of it was read from a clock that ran ahead (a device
        without a real-time clock, before its time was set) and would have failed every command issued until that
        time came; it is brought back to now.
        """
        if self.loss is not None and not self.loss.settled:
            lost_at = min(self.loss.lost_at, utc_now())
            self._conn.execute(
                "UPDATE journal_loss SET settled = 1, lost_at = ? WHERE rowid = (SELECT max(rowid) FROM journal_loss)",
                (lost_at.isoformat(),),
            )
            self.loss = JournalLoss(lost_at, self.loss.kept, settled=True)

    def record_group(self, command_id: str, group: ProcessGroup) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO process_groups (boot_id, pgid, start_ticks, command_id) VALUES (?, ?, ?, ?)",
            (group.boot_id, group.pgid, group.start_ticks, command_id),
        )

    def forget_group(self, group: ProcessGroup) -> None:
        self._conn.execute(
            "DELETE FROM process_groups WHERE boot_id = ? AND pgid = ? AND start_ticks = ?",
            (group.boot_id, group.pgid, group.start_ticks),
        )

    def process_groups(self) -> list[tuple[str, ProcessGroup]]:
        """(command id, group) for each process group recorded as started and not yet ended."""
        rows = self._conn.execute("SELECT command_id, pgid, start_ticks, boot_id FROM process_groups ORDER BY rowid")
        return [(row[0], ProcessGroup(pgid=row[1], start_ticks=row[2], boot_id=row[3])) for row in rows]

    def group_ledger(self, command_id: str) -> "CommandGroups":
        return CommandGroups(self, command_id)

    def get(self, command_id: str) -> Entry | None:
        row = self._conn.execute(
            "SELECT command, stage, boot_id, final_report, delivered FROM commands WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        return None if row is None else _entry(row)

    def record_received(self, command: Command) -> bool:
        """Journal a new command as queued; False if this command id was seen before."""
        now = utc_now().isoformat()
        cursor = self._conn.execute(
            """INSERT OR IGNORE INTO commands (command_id, stage, command, received_at, updated_at)
               VALUES (?, ?, ?, ?, ?)""",
            (command.command_id, Stage.QUEUED, encode(command).decode(), now, now),
        )
        return cursor.rowcount == 1

    def record_started(self, command_id: str, boot_id: str) -> None:
        self._conn.execute(
            "UPDATE commands SET stage = ?, boot_id = ?, updated_at = ? WHERE command_id = ?",
            (Stage.EXECUTING, boot_id, utc_now().isoformat(), command_id),
        )

    def record_finished(self, report: StatusReport) -> None:
        """Journal a final status, and forget in the same write what is old enough (one sync to disk, not two)."""
        now = utc_now()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "UPDATE commands SET stage = ?, final_report = ?, delivered = 0, updated_at = ? WHERE command_id = ?",
                (Stage.FINISHED, encode(report).decode(), now.isoformat(), report.command_id),
            )
            self._prune(now)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _prune(self, now: datetime) -> None:
        # received_at is isoformat() text in UTC, compared as text; start_before is read by SQLite's own date
        # functions, which take the JSON's `Z` form.
        self._conn.execute(
            """DELETE FROM commands
               WHERE stage = ? AND received_at < ? AND delivered = 1
                   AND coalesce(julianday(json_extract(command, '$.start_before')), 0) < julianday(?)""",
            (Stage.FINISHED, (now - RETENTION).isoformat(), (now - EXPIRY_MARGIN).isoformat()),
        )

    def mark_delivered(self, command_id: str) -> None:
        self._conn.execute("UPDATE commands SET delivered = 1 WHERE command_id = ?", (command_id,))

    def in_stage(self, stage: Stage) -> list[Entry]:
        rows = self._conn.execute(
            "SELECT command, stage, boot_id, final_report, delivered FROM commands WHERE stage = ? ORDER BY rowid",
            (stage,),
        )
        return [_entry(row) for row in rows]

    def undelivered_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM commands WHERE stage = ? AND delivered = 0", (Stage.FINISHED,)
        ).fetchone()
        return int(row[0])

    def undelivered(self) -> list[StatusReport]:
        rows = self._conn.execute(
            "SELECT final_report FROM commands WHERE stage = ? AND delivered = 0 ORDER BY updated_at", (Stage.FINISHED,)
        )
        return [decode(StatusReport, row[0].encode()) for row in rows]


@dataclass(frozen=True, slots=True)
class CommandGroups:
    """The process group ledger (agent/process_groups.py) of one command."""

    journal: Journal
    command_id: str

    def started(self, group: ProcessGroup) -> None:
        self.journal.record_group(self.command_id, group)

    def ended(self, group: ProcessGroup) -> None:
        self.journal.forget_group(group)


def _initialize(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _initialize_after_loss(kept: str) -> Callable[[sqlite3.Connection], None]:
    def initialize(conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO journal_loss (lost_at, kept) VALUES (?, ?)", (utc_now().isoformat(), kept))

    return initialize


def _entry(row: tuple[str, str, str | None, str | None, int]) -> Entry:
    command, stage, boot_id, final_report, delivered = row
    return Entry(
        command=decode(Command, command.encode()),
        stage=Stage(stage),
        boot_id=boot_id,
        final_report=None if final_report is None else decode(StatusReport, final_report.encode()),
        delivered=bool(delivered),
    )
