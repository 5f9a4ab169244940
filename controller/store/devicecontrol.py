"""/devicecontrol's view of the store: every device of every operation is one Cumulocity operation.

Its id is the row's sequence number, so ids are numeric strings and creation order is id order. DELETE hides rows
from this view (`hidden`) rather than erasing them, so /v0 keeps the history of its operations.
"""

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso
from controller.errors import Conflict, NotFound
from shared.errors import IllegalTransition
from shared.lifecycle import advance_device
from shared.messages import StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType

if TYPE_CHECKING:
    from controller.store import Store


@dataclass(frozen=True, slots=True)
class DeviceControlFilters:
    device_id: str | None = None
    status: DeviceStatus | None = None
    fragment_type: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    bulk_operation_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceControlRow:
    id: str
    device_id: str
    status: DeviceStatus
    creation_time: str
    operation_id: str
    operation_type: OperationType
    arguments: dict[str, Any]
    fragments: dict[str, Any] | None
    """As sent, for an operation created through /devicecontrol; None for one created through /v0."""
    description: str | None
    result: dict[str, Any] | None
    failure_reason: str | None


_SELECT = """SELECT d.seq, d.device_id, d.status, d.created_at, d.operation_id, o.operation_type, o.arguments,
                    o.fragments, o.description, d.result, d.failure_reason
             FROM device_operations AS d JOIN operations AS o ON o.id = d.operation_id"""


class DeviceControlView:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def get(self, operation_id: str) -> DeviceControlRow:
        row = self._store.conn.execute(f"{_SELECT} WHERE d.seq = ? AND NOT d.hidden", (_seq(operation_id),)).fetchone()
        if row is None:
            raise NotFound(f"no operation with id {operation_id!r}")
        return _row(row)

    def seq_of_command(self, command_id: str) -> str:
        row = self._store.conn.execute("SELECT seq FROM device_operations WHERE command_id = ?", (command_id,))
        return str(row.fetchone()[0])

    def set_status(self, operation_id: str, status: DeviceStatus, reason: str | None) -> str:
        """A client's PUT: move the operation along a legal transition; Conflict for one that has ended or goes back.

        A final status set this way is also sent to the device as a cancellation, so it does not run the command.
        Returns the /v0 operation it belongs to.
        """
        row = self._store.conn.execute(
            "SELECT command_id, device_id, status, operation_id FROM device_operations WHERE seq = ? AND NOT hidden",
            (_seq(operation_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no operation with id {operation_id!r}")
        current = DeviceStatus(row["status"])
        if current.is_terminal and status is not current:
            raise Conflict(f"operation {operation_id} is {current} and cannot be reopened")
        try:
            advance_device(current, status)
        except IllegalTransition as err:
            raise Conflict(f"operation {operation_id}: {err}") from err
        if status is current:
            return str(row["operation_id"])
        report = StatusReport(
            command_id=row["command_id"],
            device_id=row["device_id"],
            status=status,
            timestamp=utc_now(),
            failure_reason=reason if status is DeviceStatus.FAILED else None,
        )
        with self._store.transaction() as conn:
            self._store.commands.apply_statuses([(row["device_id"], report)], from_devices=False)
            if status.is_terminal:
                # Not yet published: it never will be. Published: the device is told to stop (the supervisor clears
                # it).
                conn.execute(
                    """UPDATE device_operations SET
                           dispatch_state = CASE dispatch_state WHEN 'waiting' THEN 'skipped' ELSE dispatch_state END,
                           cleared = CASE dispatch_state WHEN 'waiting' THEN 1 ELSE cleared END,
                           cancel_reason = CASE dispatch_state WHEN 'dispatched' THEN ? ELSE cancel_reason END
                       WHERE command_id = ?""",
                    (f"set to {status} through the API", row["command_id"]),
                )
        return str(row["operation_id"])

    def hide(self, filters: DeviceControlFilters, reason: str) -> set[str]:
        """DELETE: hide the matching operations; unfinished ones end FAILED with `reason` and their devices are told.

        Returns the /v0 operations they belong to.
        """
        clauses, params = _where(filters)
        where = " AND ".join(["NOT d.hidden", *clauses])
        now = now_iso()
        with self._store.transaction() as conn:
            rows = conn.execute(
                f"""SELECT d.seq, d.operation_id FROM device_operations AS d
                    JOIN operations AS o ON o.id = d.operation_id WHERE {where}""",
                params,
            ).fetchall()
            marks = json.dumps([row[0] for row in rows])
            conn.execute(
                """UPDATE device_operations SET status = 'FAILED', failure_reason = ?, finished_at = ?, updated_at = ?,
                       dispatch_state = 'failed', cleared = 1
                   WHERE seq IN (SELECT value FROM json_each(?)) AND dispatch_state = 'waiting'""",
                (reason, now, now, marks),
            )
            conn.execute(
                """UPDATE device_operations SET status = 'FAILED', failure_reason = ?, cancel_reason = ?,
                       finished_at = ?, updated_at = ?
                   WHERE seq IN (SELECT value FROM json_each(?)) AND status IN ('PENDING', 'EXECUTING')""",
                (reason, reason, now, now, marks),
            )
            conn.execute(
                "UPDATE device_operations SET hidden = 1 WHERE seq IN (SELECT value FROM json_each(?))", (marks,)
            )
        return {row[1] for row in rows}

    def page(
        self, filters: DeviceControlFilters, *, revert: bool, limit: int, offset: int, with_total: bool
    ) -> tuple[list[DeviceControlRow], int | None]:
        """One page in creation order (newest first with `revert`), and the total if asked for."""
        clauses, params = _where(filters)
        where = f"WHERE {' AND '.join(['NOT d.hidden', *clauses])}"
        order = "DESC" if revert else "ASC"
        rows = self._store.conn.execute(
            f"{_SELECT} {where} ORDER BY d.seq {order} LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        total = None
        if with_total:
            total = self._store.conn.execute(
                f"""SELECT count(*) FROM device_operations AS d JOIN operations AS o ON o.id = d.operation_id
                    {where}""",
                params,
            ).fetchone()[0]
        return [_row(row) for row in rows], total


def _seq(operation_id: str) -> int:
    # isascii() too: str.isdigit() is also true of digits int() refuses, such as "²".
    if not (operation_id.isascii() and operation_id.isdigit()) or len(operation_id) > 18:
        raise NotFound(f"no operation with id {operation_id!r}")
    return int(operation_id)


def _where(filters: DeviceControlFilters) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("d.device_id = ?", filters.device_id),
        ("d.status = ?", None if filters.status is None else str(filters.status)),
        ("o.fragment_type = ?", filters.fragment_type),
        ("d.created_at >= ?", filters.date_from),
        ("d.created_at <= ?", filters.date_to),
        ("d.operation_id = ?", filters.bulk_operation_id),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params


def _row(row: sqlite3.Row) -> DeviceControlRow:
    return DeviceControlRow(
        id=str(row["seq"]),
        device_id=row["device_id"],
        status=DeviceStatus(row["status"]),
        creation_time=row["created_at"],
        operation_id=row["operation_id"],
        operation_type=OperationType(row["operation_type"]),
        arguments=json.loads(row["arguments"]),
        fragments=None if row["fragments"] is None else json.loads(row["fragments"]),
        description=row["description"],
        result=None if row["result"] is None else json.loads(row["result"]),
        failure_reason=row["failure_reason"],
    )
