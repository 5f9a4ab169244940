"""The per-device commands of operations: targets, dispatch bookkeeping and status ingest, all batched."""

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso, to_iso
from controller.store.records import DeviceOperationRecord, Page
from shared.errors import IllegalTransition
from shared.lifecycle import advance_device
from shared.messages import StatusReport
from shared.operations import ActivityState, DeviceStatus, OperationState
from shared.timeouts import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from controller.store import Store


@dataclass(slots=True)
class IngestOutcome:
    """What one batch of status reports changed."""

    applied: int = 0
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


@dataclass(slots=True)
class _Row:
    operation_id: str
    device_id: str
    status: DeviceStatus
    cleared: bool
    timeout_s: int


class CommandLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store.conn

    def resolve(self, operation_id: str, device_ids: Sequence[str]) -> None:
        """Record the matched devices as PENDING commands and move the operation to RESOLVED, atomically."""
        now = now_iso()
        with self._store.transaction() as conn:
            conn.executemany(
                """INSERT INTO device_operations (command_id, operation_id, device_id, status, created_at, updated_at)
                   VALUES (?, ?, ?, 'PENDING', ?, ?)""",
                [(str(uuid.uuid4()), operation_id, device_id, now, now) for device_id in device_ids],
            )
            self._store.transition_in(
                conn,
                operation_id,
                OperationState.RESOLVED,
                ActivityState.QUERY_RESOLVED,
                f"{len(device_ids)} device(s) matched",
                None,
                "tether",
            )

    def waiting(self, operation_id: str, limit: int) -> list[tuple[str, str]]:
        """(device id, command id) of commands not yet handed to the broker."""
        rows = self._conn.execute(
            """SELECT device_id, command_id FROM device_operations
               WHERE operation_id = ? AND dispatch_state = 'waiting' ORDER BY seq LIMIT ?""",
            (operation_id, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def mark_dispatched(self, command_ids: Sequence[str], *, deadline: Deadline) -> set[str]:
        """The broker has the commands; each must be EXECUTING by `deadline` or it ends FAILED with its reason.

        Returns the commands that were stopped (cancelled, aborted) while they were being published.
        """
        now = now_iso()
        with self._store.transaction() as conn:
            stopped = {
                row[0]
                for row in conn.execute(
                    """SELECT command_id FROM device_operations
                       WHERE command_id IN (SELECT value FROM json_each(?)) AND dispatch_state != 'waiting'""",
                    (json.dumps(list(command_ids)),),
                )
            }
            conn.executemany(
                """UPDATE device_operations SET dispatch_state = 'dispatched', dispatched_at = ?, updated_at = ?,
                       deadline_at = ?, deadline_reason = ?
                   WHERE command_id = ? AND dispatch_state = 'waiting'""",
                [(now, now, deadline.at, deadline.reason, command_id) for command_id in command_ids],
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

    def apply_statuses(self, reports: Sequence[tuple[str, StatusReport]]) -> IngestOutcome:
        """Apply (topic device id, report) pairs in order, in one transaction; refuse every illegal one."""
        outcome = IngestOutcome()
        rows = self._rows({report.command_id for _, report in reports})
        updates: list[tuple[Any, ...]] = []
        now = now_iso()
        for topic_device, report in reports:
            row = rows.get(report.command_id)
            reason = _refusal(row, topic_device, report)
            if reason is not None or row is None:
                outcome.rejected.append((report.command_id, reason or "unknown command"))
                continue
            previous = row.status
            try:
                row.status = advance_device(row.status, report.status)
            except IllegalTransition as err:
                outcome.rejected.append((report.command_id, str(err)))
                continue
            at = to_iso(report.timestamp)
            started = report.status is DeviceStatus.EXECUTING and previous is not DeviceStatus.EXECUTING
            deadline = execution_deadline(row.timeout_s) if started else None
            updates.append(
                (
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
                )
            )
            outcome.operations.add(row.operation_id)
            if row.status.is_terminal and not row.cleared:
                outcome.to_clear.append((row.device_id, report.command_id))
                row.cleared = True
        if updates:
            with self._store.transaction() as conn:
                conn.executemany(
                    """UPDATE device_operations SET status = ?, received_at = coalesce(received_at, ?),
                           started_at = coalesce(started_at, ?), finished_at = coalesce(finished_at, ?),
                           result = coalesce(?, result), failure_reason = coalesce(?, failure_reason),
                           progress = coalesce(?, progress), deadline_at = coalesce(?, deadline_at),
                           deadline_reason = coalesce(?, deadline_reason), updated_at = ?
                       WHERE command_id = ?""",
                    updates,
                )
        outcome.applied = len(updates)
        return outcome

    def _rows(self, command_ids: set[str]) -> dict[str, _Row]:
        rows = self._conn.execute(
            """SELECT d.command_id, d.operation_id, d.device_id, d.status, d.cleared, o.timeout_s
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
        total = self._conn.execute(f"SELECT count(*) FROM device_operations {where}", params).fetchone()[0]
        rows = self._conn.execute(
            f"SELECT * FROM device_operations {where} ORDER BY seq LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return Page([_record(row) for row in rows], total)


def execution_deadline(timeout_s: int) -> Deadline:
    return Deadline(
        to_iso(datetime.now(UTC) + timedelta(seconds=timeout_s)),
        f"timed out: no final status within {timeout_s} s of starting",
    )


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
    )
