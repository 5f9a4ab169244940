"""The per-device commands of operations: targets, dispatch bookkeeping and status ingest, all batched."""

import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso, to_iso
from controller.store.records import DeviceOperationRecord, OperationStats, Page
from shared.errors import IllegalTransition
from shared.lifecycle import advance_device
from shared.messages import StatusReport
from shared.operations import ActivityState, DeviceStatus, OperationState
from shared.schedule import WINDOW_ENDED
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, DEFAULT_TIMEOUT_S

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


class CommandLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store.conn

    def resolve(
        self,
        operation_id: str,
        device_ids: Sequence[str],
        *,
        windows: Mapping[str, DeviceWindow] | None = None,
        refused: Mapping[str, str] | None = None,
        note: str | None = None,
    ) -> None:
        """Record the matched devices as PENDING commands and move the operation to RESOLVED, atomically.

        `windows` gives each device of a WINDOW operation its opening; `refused` devices end FAILED with the reason
        given at once (their window never opens); `note` is added to the resolution's activity message.
        """
        now = now_iso()
        windows = windows or {}
        refused = refused or {}
        rows = []
        for device_id in device_ids:
            window = windows.get(device_id)
            reason = refused.get(device_id)
            rows.append(
                (
                    str(uuid.uuid4()),
                    operation_id,
                    device_id,
                    "PENDING" if reason is None else "FAILED",
                    "waiting" if reason is None else "failed",
                    reason,
                    None if reason is None else now,
                    int(reason is not None),
                    None if window is None else window.not_before,
                    None if window is None else window.window_end,
                    None if window is None else window.zone,
                    now,
                    now,
                )
            )
        failed = sum(1 for row in rows if row[4] == "failed")
        with self._store.transaction() as conn:
            conn.executemany(
                """INSERT INTO device_operations (command_id, operation_id, device_id, status, dispatch_state,
                       failure_reason, finished_at, cleared, not_before, window_end, window_zone, created_at,
                       updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )
            conn.execute(
                """INSERT INTO operation_counts (operation_id, resolved, waiting, dispatch_failed) VALUES (?, ?, ?, ?)
                   ON CONFLICT (operation_id) DO UPDATE SET resolved = resolved + excluded.resolved,
                       waiting = waiting + excluded.waiting,
                       dispatch_failed = dispatch_failed + excluded.dispatch_failed""",
                (operation_id, len(rows), len(rows) - failed, failed),
            )
            message = f"{len(device_ids)} device(s) matched" + (f"; {note}" if note else "")
            self._store.transition_in(
                conn, operation_id, OperationState.RESOLVED, ActivityState.QUERY_RESOLVED, message, None, "tether"
            )

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
        rows = self._conn.execute(
            """SELECT device_id, command_id, window_end, window_zone, seq FROM device_operations
               WHERE operation_id = ? AND dispatch_state = 'waiting' AND (not_before IS NULL OR not_before <= ?)
                   AND seq > ?
               ORDER BY seq LIMIT ?""",
            (operation_id, now_iso(), after, limit),
        )
        return [Target(row[0], row[1], row[2], row[3], row[4]) for row in rows]

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

        Returns the commands that were stopped (cancelled, aborted) while they were being published.
        """
        now = now_iso()
        with self._store.transaction() as conn:
            stopped = {
                row[0]
                for row in conn.execute(
                    """SELECT command_id FROM device_operations
                       WHERE command_id IN (SELECT value FROM json_each(?)) AND dispatch_state != 'waiting'""",
                    (json.dumps([command_id for command_id, _ in dispatched]),),
                )
            }
            conn.executemany(
                """UPDATE device_operations SET dispatch_state = 'dispatched', dispatched_at = ?, updated_at = ?,
                       deadline_at = ?, deadline_reason = ?
                   WHERE command_id = ? AND dispatch_state = 'waiting'""",
                [(now, now, deadline.at, deadline.reason, command_id) for command_id, deadline in dispatched],
            )
        return stopped

    def mark_dispatch_failed(self, failures: Sequence[tuple[str, str]]) -> None:
        """(command id, reason): the command never reached the device, so it ends FAILED here."""
        now = now_iso()
        with self._store.transaction() as conn:
            conn.executemany(
                """UPDATE device_operations SET dispatch_state = 'failed', status = 'FAILED', failure_reason = ?,
                       finished_at = ?, updated_at = ?, cleared = 1
                   WHERE command_id = ? AND dispatch_state = 'waiting'""",
                [(reason, now, now, command_id) for command_id, reason in failures],
            )

    def apply_statuses(
        self, reports: Sequence[tuple[str, StatusReport]], *, from_devices: bool = True
    ) -> IngestOutcome:
        """Apply (topic device id, report) pairs in order, in one transaction; refuse every illegal one.

        A device that reports on a command has it, whatever was recorded: one still recorded as waiting (the
        controller died between publishing and recording it) becomes dispatched and is never published again.
        `from_devices` is off for statuses a client sets through the API, which prove nothing of the kind.
        """
        outcome = IngestOutcome()
        rows = self._rows({report.command_id for _, report in reports})
        updates: dict[str, list[Any]] = {}
        """One row update per command, however many of its statuses the batch holds (PENDING and EXECUTING often
        come together): the net effect, in the parameter order of the UPDATE below."""
        now = now_iso()
        received = datetime.fromisoformat(now)
        for topic_device, report in reports:
            row = rows.get(report.command_id)
            reason = _refusal(row, topic_device, report)
            if reason is not None or row is None:
                outcome.rejected.append((report.command_id, reason or "unknown command"))
                continue
            previous = row.status
            if previous.is_terminal:
                # The first final status stands: a duplicate, or a late report after a timeout, changes nothing.
                outcome.rejected.append((report.command_id, f"already {previous}; the first final status stands"))
                continue
            try:
                row.status = advance_device(row.status, report.status)
            except IllegalTransition as err:
                outcome.rejected.append((report.command_id, str(err)))
                continue
            at = to_iso(report.timestamp)
            started = report.status is DeviceStatus.EXECUTING and previous is not DeviceStatus.EXECUTING
            deadline = execution_deadline(row.timeout_s, row.window_end) if started else None
            delivered = from_devices and row.waiting
            if delivered and deadline is None and not row.status.is_terminal:
                deadline = delivery_deadline(row.delivery_timeout_s, row.window_end)
            row.waiting = row.waiting and not delivered
            change = [
                row.status,
                at,
                at if report.status is DeviceStatus.EXECUTING else None,
                at if report.status.is_terminal else None,
                None if report.result is None else json.dumps(report.result, separators=(",", ":")),
                report.failure_reason,
                report.progress,
                None if deadline is None else deadline.at,
                None if deadline is None else deadline.reason,
                now,
                report.command_id,
                delivered,
            ]
            earlier = updates.get(report.command_id)
            updates[report.command_id] = change if earlier is None else _merged(earlier, change)
            outcome.applied += 1
            outcome.applied_by_status[report.status] += 1
            outcome.operations.add(row.operation_id)
            if row.status.is_terminal:  # just now: a terminal one was refused above
                dispatched_at = datetime.fromisoformat(row.dispatched_at or now)
                outcome.finished_after_s.append((received - dispatched_at).total_seconds())
            if row.status.is_terminal and not row.cleared:
                outcome.to_clear.append((row.device_id, report.command_id))
                row.cleared = True
        if updates:
            with self._store.transaction() as conn:
                conn.executemany(
                    """UPDATE device_operations SET status = ?1, received_at = coalesce(received_at, ?2),
                           dispatch_state = CASE WHEN ?12 AND dispatch_state = 'waiting' THEN 'dispatched'
                                            ELSE dispatch_state END,
                           dispatched_at = CASE WHEN ?12 THEN coalesce(dispatched_at, ?2) ELSE dispatched_at END,
                           started_at = coalesce(started_at, ?3), finished_at = coalesce(finished_at, ?4),
                           result = coalesce(?5, result), failure_reason = coalesce(?6, failure_reason),
                           progress = coalesce(?7, progress), deadline_at = coalesce(?8, deadline_at),
                           deadline_reason = coalesce(?9, deadline_reason), updated_at = ?10
                       WHERE command_id = ?11""",
                    list(updates.values()),
                )
        return outcome

    def _rows(self, command_ids: set[str]) -> dict[str, _Row]:
        rows = self._conn.execute(
            """SELECT d.command_id, d.operation_id, d.device_id, d.status, d.cleared, o.timeout_s, d.window_end,
                      d.dispatch_state, o.delivery_timeout_s, d.dispatched_at
               FROM device_operations AS d JOIN operations AS o ON o.id = d.operation_id
               WHERE d.command_id IN (SELECT value FROM json_each(?))""",
            (json.dumps(sorted(command_ids)),),
        )
        return {
            r["command_id"]: _Row(
                r["operation_id"],
                r["device_id"],
                DeviceStatus(r["status"]),
                bool(r["cleared"]),
                r["timeout_s"] or DEFAULT_TIMEOUT_S,
                r["window_end"],
                r["dispatch_state"] == "waiting",
                r["delivery_timeout_s"] or DEFAULT_DELIVERY_TIMEOUT_S,
                r["dispatched_at"],
            )
            for r in rows
        }

    def uncleared_terminal(self, limit: int) -> list[tuple[str, str]]:
        """(device id, command id) of finished commands whose retained message may still be on the broker."""
        rows = self._conn.execute(
            """SELECT device_id, command_id FROM device_operations
               WHERE cleared = 0 AND status IN ('SUCCESSFUL', 'FAILED') LIMIT ?""",
            (limit,),
        )
        return [(row[0], row[1]) for row in rows]

    def mark_cleared(self, command_ids: Sequence[str]) -> None:
        with self._store.transaction() as conn:
            conn.executemany(
                "UPDATE device_operations SET cleared = 1 WHERE command_id = ?", [(c,) for c in command_ids]
            )

    def list_for_operation(
        self, operation_id: str, *, status: DeviceStatus | None, limit: int, offset: int
    ) -> Page[DeviceOperationRecord]:
        where, params = "WHERE operation_id = ?", [operation_id]
        if status is not None:
            where += " AND status = ?"
            params.append(str(status))
        total = _count_of(self._store.stats(operation_id), status)
        rows = self._conn.execute(
            f"SELECT * FROM device_operations {where} ORDER BY seq LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return Page([_record(row) for row in rows], total)


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


_FIRST_WINS = (1, 2, 3)
"""received_at, started_at, finished_at: the first moment stands, as `coalesce(column, ?)` keeps it in the row."""


def _merged(earlier: list[Any], later: list[Any]) -> list[Any]:
    """Two row updates of one command as one: the later status, the first moments, the latest of everything else."""
    merged = [later[i] if later[i] is not None else earlier[i] for i in range(len(later))]
    for index in _FIRST_WINS:
        merged[index] = earlier[index] if earlier[index] is not None else later[index]
    merged[11] = earlier[11] or later[11]
    return merged


def execution_deadline(timeout_s: int, window_end: str | None) -> Deadline:
    """From EXECUTING: the timeout, or the end of the device's schedule window if that comes first."""
    timeout = Deadline(
        to_iso(datetime.now(UTC) + timedelta(seconds=timeout_s)),
        f"timed out: no final status within {timeout_s} s of starting",
    )
    if window_end is not None and window_end < timeout.at:
        return Deadline(window_end, WINDOW_ENDED)
    return timeout


def _refusal(row: _Row | None, topic_device: str, report: StatusReport) -> str | None:
    if row is None:
        return f"no command {report.command_id} was sent"
    if report.device_id != topic_device:
        return f"payload names device {report.device_id!r} but the topic names {topic_device!r}"
    if row.device_id != topic_device:
        return f"command {report.command_id} was not sent to device {topic_device!r}"
    return None


def _record(row: sqlite3.Row) -> DeviceOperationRecord:
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
