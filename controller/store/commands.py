"""The per-device commands of operations: targets, dispatch bookkeeping and status ingest, all batched."""

import functools
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from controller.clock import now_iso, to_iso
from controller.ids import time_ordered_ids
from controller.store.connection import Connection, Row
from controller.store.dialect import Dialect
from controller.store.moves import if_may_become
from controller.store.one_step import compact_json, fetch_rows, packed
from controller.store.records import DeviceOperationRecord, OperationStats, Page
from shared.errors import IllegalTransition
from shared.lifecycle import advance_device
from shared.messages import StatusReport
from shared.operations import DEVICE_STATUS_OF, TERMINAL_DEVICE_STATUSES, ActivityState, DeviceStatus, OperationState
from shared.schedule import WINDOW_ENDED
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, DEFAULT_TIMEOUT_S

log = logging.getLogger(__name__)

_FAILED = DeviceStatus.FAILED
_T = TypeVar("_T")

if TYPE_CHECKING:
    from controller.store import Store


@dataclass(slots=True)
class IngestOutcome:
    """What one batch of status reports changed."""

    applied: int = 0
    applied_by_status: Counter[DeviceStatus] = field(default_factory=Counter)
    finished_after_s: list[float] = field(default_factory=list)
    """Seconds from dispatch to the final status, on the controller's clock, of each command that finished."""
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(command id, reason) of every report that was ignored."""
    to_clear: list[tuple[str, str]] = field(default_factory=list)
    """(device id, command id) whose retained command can now be cleared."""
    operations: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Deadline:
    at: str
    """ISO 8601 UTC, comparable as text with now_iso()."""
    reason: str
    """The failure reason once it has passed."""


@dataclass(frozen=True, slots=True)
class DeviceWindow:
    """When one device's WINDOW schedule first opens and finally ends, read in `zone` (None: UTC, zone unknown)."""

    not_before: str
    window_end: str
    zone: str | None


@dataclass(frozen=True, slots=True)
class Target:
    """A command due for dispatch."""

    device_id: str
    command_id: str
    window_end: str | None
    window_zone: str | None
    seq: int = 0
    """Its place in the dispatch order."""


@dataclass(frozen=True, slots=True)
class Outstanding:
    """A command on the broker that its device has not finished."""

    operation_id: str
    target: Target
    deadline: Deadline
    """The one recorded when it was dispatched, or when it started."""
    executing: bool


@dataclass(slots=True)
class _Row:
    operation_id: str
    device_id: str
    status: DeviceStatus
    cleared: bool
    timeout_s: int
    window_end: str | None
    waiting: bool
    """Not recorded as dispatched: the controller died between publishing the command and recording it."""
    delivery_timeout_s: int
    dispatched_at: str | None
    read_status: DeviceStatus
    read_waiting: bool
    """`status` and `waiting` as read, which an update of the row requires it still to have."""


class _RowChange(NamedTuple):
    """What one command's row update reads from the row itself. A tuple, not a dataclass: the batch goes to SQLite
    packed as one JSON array of them (controller/store/one_step.py), and `json` writes a tuple as an array at C speed.
    """

    command_id: str
    at: str
    started_at: str | None
    finished_at: str | None
    result: str | None
    failure_reason: str | None
    progress: int | None
    deadline_at: str | None

    def carried(self) -> tuple[bool, ...]:
        """Which of the members a row may lack (_OPTIONAL: started_at to deadline_at) it has."""
        return (
            self.started_at is not None,
            self.finished_at is not None,
            self.result is not None,
            self.failure_reason is not None,
            self.progress is not None,
            self.deadline_at is not None,
        )


_OPTIONAL = _RowChange._fields[_RowChange._fields.index("started_at") :]


class _Shared(NamedTuple):
    """What a row update's statement takes as parameters: a batch holds a few values of each (the statuses, the
    timeouts' reasons, the moment, the statuses read), so its updates share a handful of statements. A tuple: it is
    the key that groups a batch's updates, hashed once per status at C speed (a frozen dataclass's hash is Python's).
    """

    status: DeviceStatus
    deadline_reason: str | None
    updated_at: str
    read_status: DeviceStatus
    read_waiting: bool


class _StatusUpdate(NamedTuple):
    """One command's net change in `apply_statuses`. A tuple for speed alone: one is built per status ingested, and
    a frozen dataclass's __init__ (a setattr per field) cost three times as much; see docs/performance.md."""

    row: _RowChange
    shared: _Shared
    delivered: bool
    """A device reported on a command still recorded as waiting; only Python reads it."""


class _Changed(Exception):
    """Another thread changed a row between reading it and updating it."""


class CommandLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store
        self._update_sql: dict[tuple[bool, ...], str] = {}
        """The status UPDATE of each shape of row update (_status_update_sql), made once: at most 64."""

    @property
    def _conn(self) -> Connection:
        return self._store.conn

    @property
    def _dialect(self) -> Dialect:
        return self._store.dialect

    def add_targets(
        self,
        operation_id: str,
        device_ids: Sequence[str],
        *,
        windows: Mapping[str, DeviceWindow] | None = None,
        refused: Mapping[str, str] | None = None,
    ) -> int:
        """Record each device that is not a target of the operation yet as a PENDING command; returns how many.

        `windows` gives each device of a WINDOW operation its opening; `refused` devices end FAILED with the reason
        given at once (their window never opens). A device recorded already keeps its command: a resolution taken up
        again after a crash adds only what the one before it had not.
        """
        now = now_iso()
        windows = windows or {}
        refused = refused or {}
        waiting: list[list[str | None]] = []
        failing: list[list[str | None]] = []
        for device_id, command_id in zip(device_ids, time_ordered_ids(len(device_ids)), strict=True):
            row: list[str | None] = [command_id, device_id]
            reason = refused.get(device_id)
            window = windows.get(device_id)
            if reason is not None or window is not None:
                row.append(reason)
            if window is not None:
                row += (window.not_before, window.window_end, window.zone)
            (waiting if reason is None else failing).append(row)  # a member past a row's end reads NULL
        dialect = self._dialect
        added = {"waiting": 0, "failed": 0}
        with self._store.transaction() as conn:
            for dispatch_state, rows in (("waiting", waiting), ("failed", failing)):
                if rows:
                    added[dispatch_state] = conn.execute(
                        f"""INSERT INTO device_operations ({", ".join(_RESOLVED_COLUMNS)})
                            SELECT command_id, ?1, device_id, CASE WHEN reason IS NULL THEN 'PENDING' ELSE 'FAILED' END,
                                CASE WHEN reason IS NULL THEN 'waiting' ELSE 'failed' END, reason,
                                CASE WHEN reason IS NULL THEN NULL ELSE ?2 END, CAST(reason IS NOT NULL AS INTEGER),
                                not_before, window_end, window_zone, ?2, ?2
                            FROM (SELECT {dialect.members(enumerate(_RESOLVED_PER_DEVICE))} FROM {dialect.rows("?3")})
                                AS resolved
                            WHERE true
                            ON CONFLICT (operation_id, device_id) DO NOTHING""",
                        (operation_id, now, packed(rows)),
                    ).rowcount
            conn.execute(
                """INSERT INTO operation_counts AS c (operation_id, resolved, waiting, dispatch_failed)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (operation_id) DO UPDATE SET resolved = c.resolved + excluded.resolved,
                       waiting = c.waiting + excluded.waiting,
                       dispatch_failed = c.dispatch_failed + excluded.dispatch_failed""",
                (operation_id, added["waiting"] + added["failed"], added["waiting"], added["failed"]),
            )
        return added["waiting"] + added["failed"]

    def resolved(self, operation_id: str, matched: int, note: str | None = None) -> None:
        """Move the operation, whose `matched` targets are recorded, to RESOLVED; `note` is added to the
        resolution's activity message."""
        with self._store.transaction() as conn:
            message = f"{matched} device(s) matched" + (f"; {note}" if note else "")
            self._store.operations.transition_in(
                conn, operation_id, OperationState.RESOLVED, ActivityState.QUERY_RESOLVED, message, None, "tether"
            )
            self._statistics_changed(matched)

    def published(self, count: int) -> None:
        """A pass of dispatch handed `count` commands to the broker (DISPATCHED is logged). PostgreSQL's statistics
        still say they all wait, from when they were resolved: it then found what still waits by walking every
        published command in dispatch order (100,000 devices: 27 ms a query, 350 queries), where it now reads the
        queue's own index."""
        self._statistics_changed(count)

    def _statistics_changed(self, rows: int) -> None:
        if (refresh := self._dialect.statistics_refresh("device_operations", rows)) is not None:
            self._store.on_commit(functools.partial(self._refresh_statistics, refresh))

    def _refresh_statistics(self, statement: str) -> None:
        """After the commit: a failure costs only speed, until autovacuum refreshes them itself."""
        try:
            self._conn.execute(statement)
        except Exception as err:
            log.warning("could not refresh the planner's statistics (%s): %s", statement, err)

    def any_waiting(self, operation_id: str) -> bool:
        """Whether any command of the operation has not been handed to the broker yet.

        The operation's counts answer at once while PENDING commands wait (one row, kept by the schema's triggers);
        only once none does are its rows asked, for the rare command a client ended before it was published.
        PostgreSQL answered the rows' question by walking every published command in dispatch order, as its
        statistics said all of them waited: 31 ms a batch of statuses at 100,000 devices."""
        counted = self._conn.execute(
            "SELECT waiting FROM operation_counts WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        if counted is not None and counted[0] > 0:
            return True
        return bool(self.waiting(operation_id, 1))

    def waiting(self, operation_id: str, limit: int) -> list[tuple[str, str]]:
        """(device id, command id) of commands not yet handed to the broker, due or not."""
        rows = self._conn.execute(
            """SELECT device_id, command_id FROM device_operations
               WHERE operation_id = ? AND dispatch_state = 'waiting' ORDER BY seq LIMIT ?""",
            (operation_id, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def due(self, operation_id: str, limit: int, after: int = 0) -> list[Target]:
        """Commands not yet handed to the broker whose window (if any) has opened, in order, from `after` on."""
        rows = fetch_rows(
            self._conn,
            f"""SELECT {self._dialect.array_of_arrays("device_id, command_id, window_end, window_zone, seq")} FROM (
                   SELECT * FROM device_operations
                   WHERE operation_id = ? AND dispatch_state = 'waiting' AND (not_before IS NULL OR not_before <= ?)
                       AND seq > ?
                   ORDER BY seq LIMIT ?) AS due""",
            (operation_id, now_iso(), after, limit),
        )
        # The aggregate keeps the subquery's order in practice, but neither engine promises it.
        return sorted((Target(*row) for row in rows), key=lambda target: target.seq)

    def unstarted_windows(self, device_ids: Sequence[str]) -> list[tuple[str, str, str | None, str]]:
        """(command id, dispatch state, device's zone now, schedule_args JSON) of the devices' WINDOW commands that
        have not started: waiting for dispatch, or dispatched and not yet EXECUTING."""
        return [
            tuple(row)
            for row in self._conn.execute(
                f"""SELECT d.command_id, d.dispatch_state, v.time_zone, o.schedule_args FROM device_operations d
                       JOIN operations o ON o.id = d.operation_id JOIN devices v ON v.device_id = d.device_id
                   WHERE d.device_id IN ({self._dialect.values("?")}) AND d.window_end IS NOT NULL
                       AND d.status = 'PENDING' AND d.dispatch_state IN ('waiting', 'dispatched')""",
                (packed(list(device_ids)),),
            )
        ]

    def replan(self, windows: Mapping[str, DeviceWindow]) -> None:
        """Give commands that have not started a new window (their device moved); a dispatched one's deadline is its
        new window end."""
        if not windows:
            return
        rows = [[command_id, w.not_before, w.window_end, w.zone] for command_id, w in windows.items()]
        named = enumerate(("command_id", "not_before", "window_end", "window_zone"))
        with self._store.transaction() as conn:
            conn.execute(
                f"""UPDATE device_operations SET not_before = w.not_before, window_end = w.window_end,
                        window_zone = w.window_zone, updated_at = ?1,
                        deadline_at = CASE WHEN dispatch_state = 'dispatched' THEN w.window_end ELSE deadline_at END
                    FROM (SELECT {self._dialect.members(named)} FROM {self._dialect.rows("?2")}) AS w
                    WHERE device_operations.command_id = w.command_id AND status = 'PENDING'""",
                (now_iso(), packed(rows)),
            )

    def any_reported(self, operation_id: str) -> bool:
        """Whether any device has sent a status for its command of the operation."""
        row = self._conn.execute(
            "SELECT 1 FROM device_operations WHERE operation_id = ? AND received_at IS NOT NULL LIMIT 1",
            (operation_id,),
        ).fetchone()
        return row is not None

    def next_opening(self, operation_id: str) -> str | None:
        """The earliest window opening among the commands still waiting, if any waits for one."""
        row = self._conn.execute(
            """SELECT min(not_before) FROM device_operations
               WHERE operation_id = ? AND dispatch_state = 'waiting'""",
            (operation_id,),
        ).fetchone()
        return None if row is None else row[0]

    def mark_dispatched(self, dispatched: Sequence[tuple[str, Deadline]]) -> set[str]:
        """The broker has the commands; each must be EXECUTING by its deadline or it ends FAILED with its reason.

        Returns the commands whose retained message must be taken back: those stopped (cancelled, aborted: their
        dispatch failed) while they were being published, and those already finished, whose clear may have reached
        the broker before this publication did (a command published again after a restart, whose device had
        answered the first). Not those a device is still running: their final status clears them.
        """
        now = now_iso()
        with self._store.transaction() as conn:
            to_take_back = {
                row[0]
                for row in conn.execute(
                    f"""SELECT command_id FROM device_operations
                       WHERE command_id IN ({self._dialect.values("?")})
                           AND (dispatch_state = 'failed' OR status IN ('SUCCESSFUL', 'FAILED'))""",
                    (packed([command_id for command_id, _ in dispatched]),),
                )
            }
            # One statement per deadline, which it takes as parameters: a batch's commands share theirs (a WINDOW
            # operation's, one per time zone), and reading it from every row took more than the rest of the update.
            by_deadline: dict[Deadline, list[str]] = {}
            for command_id, deadline in dispatched:
                by_deadline.setdefault(deadline, []).append(command_id)
            for deadline, command_ids in by_deadline.items():
                conn.execute(
                    f"""UPDATE device_operations SET dispatch_state = 'dispatched', dispatched_at = ?1,
                            updated_at = ?1, deadline_at = ?2, deadline_reason = ?3
                        WHERE command_id IN ({self._dialect.values("?4")}) AND dispatch_state = 'waiting'""",
                    (now, deadline.at, deadline.reason, packed(command_ids)),
                )
        return to_take_back

    def mark_dispatch_failed(self, failures: Sequence[tuple[str, str]]) -> None:
        """(command id, reason): the command never reached the device, so it ends FAILED here.

        Each leaves the dispatch queue; one a client already ended keeps its final status and reason."""
        now = now_iso()
        with self._store.transaction() as conn:
            conn.execute(
                f"""UPDATE device_operations AS d SET dispatch_state = 'failed', cleared = 1, updated_at = ?1,
                        status = {if_may_become(_FAILED, "'FAILED'", "d.status", "d.status")},
                        failure_reason = {if_may_become(_FAILED, "u.reason", "d.failure_reason", "d.status")},
                        finished_at = {if_may_become(_FAILED, "?1", "d.finished_at", "d.status")}
                    FROM (SELECT {self._dialect.members(enumerate(("command_id", "reason")))}
                          FROM {self._dialect.rows("?2")}) AS u
                    WHERE d.command_id = u.command_id AND d.dispatch_state = 'waiting'""",
                (now, packed(failures)),
            )

    def apply_statuses(
        self, reports: Sequence[tuple[str, StatusReport]], *, from_devices: bool = True
    ) -> IngestOutcome:
        """Apply (topic device id, report) pairs in order, in one transaction; refuse every illegal one.

        A device that reports on a command has it, whatever was recorded: one still recorded as waiting (the
        controller died between publishing and recording it) becomes dispatched and is never published again.
        `from_devices` is off for statuses a client sets through the API, which prove nothing of the kind.
        """
        try:
            return self._apply(reports, from_devices, read_in_transaction=False)
        except _Changed:
            return self._apply(reports, from_devices, read_in_transaction=True)

    def _apply(
        self, reports: Sequence[tuple[str, StatusReport]], from_devices: bool, *, read_in_transaction: bool
    ) -> IngestOutcome:
        """Work a batch out from rows read before the transaction, so that the write lock (which a POST may be
        waiting for) is held for one statement only; the statement changes only rows still as they were read, and
        if another thread changed one meanwhile (a deadline passed, an operator set a status), _Changed rolls the
        batch back, to be worked out again from rows read inside the transaction."""
        command_ids = {report.command_id for _, report in reports}
        outcome = IngestOutcome()

        def work_out() -> list[_StatusUpdate]:
            return _net_changes(self._rows(command_ids), reports, from_devices, outcome)

        updates = None if read_in_transaction else work_out()
        with self._store.transaction() as conn:
            if updates is None:
                updates = work_out()
            if updates:
                if self._write_updates(conn, updates) != len(updates):
                    raise _Changed
                delivered = [(update.row.command_id, update.row.at) for update in updates if update.delivered]
                if delivered:
                    # Apart, and rare (commands still recorded as waiting): a statement that sets dispatch_state
                    # updates the two indexes of waiting commands for every row it changes.
                    conn.execute(
                        f"""UPDATE device_operations AS d SET dispatch_state = 'dispatched',
                                dispatched_at = coalesce(d.dispatched_at, u.at)
                            FROM (SELECT {self._dialect.members(enumerate(("command_id", "at")))}
                                  FROM {self._dialect.rows("?")}) AS u
                            WHERE d.command_id = u.command_id AND d.dispatch_state = 'waiting'""",
                        (packed(delivered),),
                    )
        return outcome

    def _write_updates(self, conn: Connection, updates: list[_StatusUpdate]) -> int:
        """Write the row updates in one statement per shape (the optional members carried, the shared values), each
        reading only what its rows carry; the number of rows changed.

        A `json_extract` parses its whole row every time: fourteen members read from every row cost ~4.7 µs a row,
        the two to four a row carries ~0.3-0.7 µs. A batch has a handful of shapes: PENDING, EXECUTING, a final
        status, or several of them at once."""
        shapes: dict[tuple[tuple[bool, ...], _Shared], list[_RowChange]] = {}
        for update in updates:
            shapes.setdefault((update.row.carried(), update.shared), []).append(update.row)
        changed = 0
        for (carried, shared), rows in shapes.items():
            sql = self._update_sql.get(carried)
            if sql is None:
                sql = self._update_sql[carried] = _status_update_sql(self._dialect, carried)
            changed += conn.execute(sql, {**shared._asdict(), "rows": packed(rows)}).rowcount
        return changed

    def _rows(self, command_ids: set[str]) -> dict[str, _Row]:
        read = """d.command_id, d.operation_id, d.device_id, d.status, d.cleared, o.timeout_s, d.window_end,
                  d.dispatch_state, o.delivery_timeout_s, d.dispatched_at"""
        rows = fetch_rows(
            self._conn,
            f"""SELECT {self._dialect.array_of_arrays(read)}
               FROM device_operations AS d JOIN operations AS o ON o.id = d.operation_id
               WHERE d.command_id IN ({self._dialect.values("?")})""",
            (packed(sorted(command_ids)),),
        )
        return {
            command_id: _Row(
                operation_id,
                device_id,
                (read_status := DEVICE_STATUS_OF[status]),
                bool(cleared),
                timeout_s or DEFAULT_TIMEOUT_S,
                window_end,
                (read_waiting := dispatch_state == "waiting"),
                delivery_timeout_s or DEFAULT_DELIVERY_TIMEOUT_S,
                dispatched_at,
                read_status,
                read_waiting,
            )
            for (
                command_id,
                operation_id,
                device_id,
                status,
                cleared,
                timeout_s,
                window_end,
                dispatch_state,
                delivery_timeout_s,
                dispatched_at,
            ) in rows
        }

    def uncleared_terminal(self, limit: int) -> list[tuple[str, str]]:
        """(device id, command id) of finished commands whose retained message may still be on the broker."""
        rows = fetch_rows(
            self._conn,
            f"""SELECT {self._dialect.array_of_arrays("device_id, command_id")} FROM (
                   SELECT device_id, command_id FROM clears_owed LIMIT ?) AS uncleared""",
            (limit,),
        )
        return [(device_id, command_id) for device_id, command_id in rows]

    def outstanding(self, limit: int, after: int = 0) -> list["Outstanding"]:
        """The commands on the broker whose device has not finished them, in dispatch order from `after` on: what a
        broker that lost its retained messages must be given again. Not those being cancelled."""
        read = """operation_id, device_id, command_id, window_end, window_zone, seq, deadline_at, deadline_reason,
                  status = 'EXECUTING'"""
        rows = fetch_rows(
            self._conn,
            f"""SELECT {self._dialect.array_of_arrays(read)} FROM (
                   SELECT * FROM device_operations
                   WHERE seq > ? AND dispatch_state = 'dispatched' AND status IN ('PENDING', 'EXECUTING')
                       AND cleared = 0 AND cancel_reason IS NULL
                   ORDER BY seq LIMIT ?) AS outstanding""",
            (after, limit),
        )
        found = [
            Outstanding(
                operation_id,
                Target(device_id, command_id, window_end, window_zone, seq),
                Deadline(deadline_at, deadline_reason),
                bool(executing),
            )
            for (
                operation_id,
                device_id,
                command_id,
                window_end,
                window_zone,
                seq,
                deadline_at,
                deadline_reason,
                executing,
            ) in rows
        ]
        return sorted(found, key=lambda command: command.target.seq)

    def mark_cleared(self, command_ids: Sequence[str]) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                f"DELETE FROM clears_owed WHERE command_id IN ({self._dialect.values('?')})", (packed(command_ids),)
            )

    def list_for_operation(
        self, operation_id: str, *, status: DeviceStatus | None, limit: int, offset: int
    ) -> Page[DeviceOperationRecord]:
        where, params = "WHERE operation_id = ?", [operation_id]
        if status is not None:
            where += " AND status = ?"
            params.append(str(status))
        total = _count_of(self._store.operations.stats(operation_id), status)
        rows = self._conn.execute(
            f"SELECT *, {QUEUED_BEHIND} AS queued_behind FROM device_operations AS d {where} ORDER BY seq "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return Page([replace(_record(row), queued_behind=row["queued_behind"]) for row in rows], total)


QUEUED_BEHIND = """CASE WHEN d.status = 'PENDING' AND d.dispatch_state = 'dispatched' THEN (
    SELECT e.operation_id FROM device_operations AS e
    WHERE e.device_id = d.device_id AND e.status IN ('PENDING', 'EXECUTING') AND e.seq < d.seq
        AND e.dispatch_state = 'dispatched'
    ORDER BY e.seq LIMIT 1
) END"""
"""The operation of the device's earliest unfinished command sent before this one, which it runs first (an agent
runs its commands one at a time, in order); for a command sent and not started. The `status IN` matches the
unfinished_by_device index."""


def _net_changes(
    rows: dict[str, _Row], reports: Sequence[tuple[str, StatusReport]], from_devices: bool, outcome: IngestOutcome
) -> list[_StatusUpdate]:
    """Each command's row update for the reports it received, in order; refusals and what changed go to `outcome`."""
    updates: dict[str, _StatusUpdate] = {}
    """One row update per command, however many of its statuses the batch holds (PENDING and EXECUTING often
    come together): the net effect."""
    received = datetime.now(UTC)
    now = to_iso(received)
    timeouts: dict[int, Deadline] = {}
    """Each timeout's deadline from now: the commands of one operation share theirs."""
    rejected, by_status, operations = outcome.rejected, outcome.applied_by_status, outcome.operations
    for topic_device, report in reports:
        command_id, status = report.command_id, report.status
        row = rows.get(command_id)
        if row is None or report.device_id != topic_device or row.device_id != topic_device:
            rejected.append((command_id, _refusal(row, topic_device, report)))
            continue
        previous = row.status
        if previous in TERMINAL_DEVICE_STATUSES:
            # The first final status stands: a duplicate, or a late report after a timeout, changes nothing.
            rejected.append((command_id, f"already {previous}; the first final status stands"))
            continue
        try:
            row.status = advance_device(previous, status)
        except IllegalTransition as err:
            rejected.append((command_id, str(err)))
            continue
        at = to_iso(report.timestamp)
        finished = status in TERMINAL_DEVICE_STATUSES
        executing = status is DeviceStatus.EXECUTING
        deadline = None
        if executing and previous is not DeviceStatus.EXECUTING:
            timeout = timeouts.get(row.timeout_s)
            if timeout is None:
                timeout = timeouts[row.timeout_s] = _execution_timeout(row.timeout_s, received)
            deadline = _first_of(timeout, row.window_end)
        delivered = from_devices and row.waiting
        if delivered:
            row.waiting = False
            if deadline is None and not finished:
                deadline = delivery_deadline(row.delivery_timeout_s, row.window_end)
        change = _StatusUpdate(
            _RowChange(
                command_id,
                at,
                at if executing else None,
                at if finished else None,
                None if report.result is None else compact_json(report.result),
                report.failure_reason,
                report.progress,
                None if deadline is None else deadline.at,
            ),
            _Shared(status, None if deadline is None else deadline.reason, now, row.read_status, row.read_waiting),
            delivered,
        )
        earlier = updates.get(command_id)
        updates[command_id] = change if earlier is None else _merged(earlier, change)
        outcome.applied += 1
        by_status[status] += 1
        operations.add(row.operation_id)
        if finished:  # just now: a terminal one was refused above
            dispatched_at = datetime.fromisoformat(row.dispatched_at or now)
            outcome.finished_after_s.append((received - dispatched_at).total_seconds())
            if not row.cleared:
                outcome.to_clear.append((row.device_id, command_id))
                row.cleared = True
    return list(updates.values())


def _count_of(stats: OperationStats, status: DeviceStatus | None) -> int:
    """How many of an operation's devices have `status` (all for None), from the counts the triggers keep: counting
    the rows took ~100 ms per page of a 100,000-device operation."""
    if status is None:
        return stats.resolved_device_count
    return {
        DeviceStatus.PENDING: stats.waiting_device_count + stats.pending_device_count,
        DeviceStatus.EXECUTING: stats.executing_device_count,
        DeviceStatus.SUCCESSFUL: stats.success_device_count,
        DeviceStatus.FAILED: stats.failed_device_count + stats.dispatch_failed_count,
    }[status]


def delivery_deadline(delivery_timeout_s: int, window_end: str | None, issued_at: datetime | None = None) -> Deadline:
    """From dispatch: `delivery_timeout_s` to start; a WINDOW command may wait on its device until its window ends."""
    if window_end is not None:
        return Deadline(window_end, WINDOW_ENDED)
    return Deadline(
        to_iso((issued_at or datetime.now(UTC)) + timedelta(seconds=delivery_timeout_s)),
        f"timed out: not started within {delivery_timeout_s} s of dispatch (device offline?)",
    )


_RESOLVED_COLUMNS = (
    "command_id",
    "operation_id",
    "device_id",
    "status",
    "dispatch_state",
    "failure_reason",
    "finished_at",
    "cleared",
    "not_before",
    "window_end",
    "window_zone",
    "created_at",
    "updated_at",
)
"""The columns of a resolved command's row, in the order `resolve` fills them."""
_RESOLVED_PER_DEVICE = ("command_id", "device_id", "reason", "not_before", "window_end", "window_zone")
"""What differs from one resolved device to the next; the rest is the operation's, or the moment's.

One `json_extract` per member per row: with the operation's own values (its id, the time, the defaults) in every
row too, resolving 100,000 devices took 1.35 s; with these alone, 0.88 s."""


_SET_IF_CARRIED = {
    "started_at": "started_at = coalesce(d.started_at, u.started_at)",
    "finished_at": "finished_at = coalesce(d.finished_at, u.finished_at)",
    "result": "result = u.result",
    "failure_reason": "failure_reason = u.failure_reason",
    "progress": "progress = u.progress",
    "deadline_at": "deadline_at = u.deadline_at, deadline_reason = :deadline_reason",
}
"""What a row update carrying each optional member sets; without it, the column keeps its value."""


def _status_update_sql(dialect: Dialect, carried: tuple[bool, ...]) -> str:
    """The UPDATE for rows that carry the optional members flagged in `carried`."""
    optional = [(_RowChange._fields.index(name), name) for name, has in zip(_OPTIONAL, carried, strict=True) if has]
    read = [(0, "command_id"), (1, "at"), *optional]
    sets = ", ".join(
        [
            "status = :status",
            "received_at = coalesce(d.received_at, u.at)",
            "updated_at = :updated_at",
            *(_SET_IF_CARRIED[name] for _, name in optional),
        ]
    )
    return f"""UPDATE device_operations AS d SET {sets}
        FROM (SELECT {dialect.members(read)} FROM {dialect.rows(":rows")}) AS u
        WHERE d.command_id = u.command_id AND d.status = :read_status
            AND CAST(d.dispatch_state = 'waiting' AS INTEGER) = :read_waiting"""


def _merged(earlier: _StatusUpdate, later: _StatusUpdate) -> _StatusUpdate:
    """Two row updates of one command as one: the later status, the first moments (as `coalesce(column, ?)` keeps
    them in the row), the latest of everything else."""
    first, last = earlier.row, later.row
    row = _RowChange(
        first.command_id,
        first.at,
        _either(first.started_at, last.started_at),
        _either(first.finished_at, last.finished_at),
        _either(last.result, first.result),
        _either(last.failure_reason, first.failure_reason),
        _either(last.progress, first.progress),
        _either(last.deadline_at, first.deadline_at),
    )
    shared = later.shared._replace(
        deadline_reason=_either(later.shared.deadline_reason, earlier.shared.deadline_reason)
    )
    return _StatusUpdate(row, shared, earlier.delivered or later.delivered)


def _either(preferred: _T | None, otherwise: _T | None) -> _T | None:
    return otherwise if preferred is None else preferred


def _execution_timeout(timeout_s: int, started: datetime) -> Deadline:
    """From EXECUTING at `started`: the final status is due within the operation's timeout."""
    return Deadline(
        to_iso(started + timedelta(seconds=timeout_s)), f"timed out: no final status within {timeout_s} s of starting"
    )


def _first_of(timeout: Deadline, window_end: str | None) -> Deadline:
    """The timeout, or the end of the device's schedule window if that comes first."""
    if window_end is not None and window_end < timeout.at:
        return Deadline(window_end, WINDOW_ENDED)
    return timeout


def _refusal(row: _Row | None, topic_device: str, report: StatusReport) -> str:
    """Why a report on no command of the batch's, or from the wrong device, is refused."""
    if row is None:
        return f"no command {report.command_id} was sent"
    if report.device_id != topic_device:
        return f"payload names device {report.device_id!r} but the topic names {topic_device!r}"
    return f"command {report.command_id} was not sent to device {topic_device!r}"


def _record(row: Row) -> DeviceOperationRecord:
    return DeviceOperationRecord(
        command_id=row["command_id"],
        operation_id=row["operation_id"],
        device_id=row["device_id"],
        status=DeviceStatus(row["status"]),
        dispatch_state=row["dispatch_state"],
        created_at=row["created_at"],
        dispatched_at=row["dispatched_at"],
        received_at=row["received_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        result=None if row["result"] is None else json.loads(row["result"]),
        failure_reason=row["failure_reason"],
        progress=row["progress"],
        not_before=row["not_before"],
        deadline_at=row["deadline_at"],
    )
