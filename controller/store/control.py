"""Stopping commands before they end on their own: deadlines passing, cancellation and rollout aborts; and moving
deadlines on by the time the controller could not hear devices.

A command that has reached a device is never marked FAILED behind the device's back unless it is also sent a
cancellation: each stop records `cancel_reason`, and the supervisor publishes a CancelRequest for every such row.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso, to_iso
from controller.errors import Conflict
from controller.store.connection import Connection
from controller.store.moves import if_may_become, may_become
from controller.store.one_step import fetch_rows, packed
from controller.store.records import SYSTEM_ACTOR
from shared.lifecycle import is_terminal_operation
from shared.operations import ActivityState, DeviceStatus, OperationState

if TYPE_CHECKING:
    from controller.store import Store


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """A cancellation to publish to one device."""

    operation_id: str
    device_id: str
    command_id: str
    reason: str


class OperationControl:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def last_heard(self) -> datetime | None:
        """When the controller was last connected to its broker, as `heard` recorded it."""
        row = self._store.conn.execute("SELECT heard_at FROM hearing WHERE id = 1").fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def heard(self, now: datetime, postpone_s: float) -> int:
        """Record that the controller is connected at `now`, first moving every unfinished command's deadline
        `postpone_s` seconds later (controller/hearing.py says how far); the number of deadlines moved."""
        moved = 0
        later = self._store.dialect.seconds_after("deadline_at", "?")
        with self._store.transaction() as conn:
            if postpone_s > 0:
                moved = conn.execute(
                    f"""UPDATE device_operations SET deadline_at = {later}
                       WHERE status IN ('PENDING', 'EXECUTING') AND deadline_at IS NOT NULL""",
                    (round(postpone_s, 3),),
                ).rowcount
            conn.execute(
                """INSERT INTO hearing (id, heard_at) VALUES (1, ?)
                   ON CONFLICT (id) DO UPDATE SET heard_at = excluded.heard_at""",
                (to_iso(now),),
            )
        return moved

    def expire(self, limit: int) -> set[str]:
        """End FAILED, with their deadline's reason, the unfinished commands whose deadline has passed.

        Returns the operations touched. The rows keep `cleared = 0` so their retained commands are removed, and get
        `cancel_reason` so that a device still holding one stops it.
        """
        now = now_iso()
        dialect = self._store.dialect
        with self._store.transaction() as conn:
            # One step each way (controller/store/one_step): thousands of devices offline expire together, and
            # a statement per row waited for the busy loop's interpreter lock at every one.
            rows = fetch_rows(
                conn,
                f"""SELECT {dialect.array_of_arrays("command_id, operation_id")} FROM (
                       SELECT command_id, operation_id FROM device_operations
                       WHERE deadline_at <= ? AND status IN ('PENDING', 'EXECUTING') LIMIT ?) AS due""",
                (now, limit),
            )
            # Held to the rows still free to fail: one a device ended since the read keeps its final status.
            conn.execute(
                f"""UPDATE device_operations SET status = 'FAILED', failure_reason = deadline_reason,
                       cancel_reason = deadline_reason, finished_at = ?1, updated_at = ?1
                   WHERE command_id IN ({dialect.values("?2")}) AND {may_become(DeviceStatus.FAILED)}""",
                (now, packed([command_id for command_id, _ in rows])),
            )
        return {operation_id for _, operation_id in rows}

    def cancel(self, operation_id: str, actor: str) -> None:
        """Stop an operation on behalf of `actor`; raise Conflict if it has already ended or is being stopped."""
        reason = f"cancelled by {actor}"
        with self._store.transaction() as conn:
            self._stop(conn, operation_id, reason, actor)
            now = now_iso()
            # Reached the broker but not acknowledged by the device: it ends here, and the device is told too.
            conn.execute(
                f"""UPDATE device_operations SET status = 'FAILED', failure_reason = ?, cancel_reason = ?,
                       finished_at = ?, updated_at = ?
                   WHERE operation_id = ? AND dispatch_state = 'dispatched' AND status = 'PENDING'
                       AND received_at IS NULL AND {may_become(DeviceStatus.FAILED)}""",
                (reason, reason, now, now, operation_id),
            )
            # Acknowledged: the device decides (a queued or stoppable command fails "cancelled", others finish).
            conn.execute(
                f"""UPDATE device_operations SET cancel_reason = ?, updated_at = ?
                   WHERE operation_id = ? AND dispatch_state = 'dispatched'
                       AND {may_become(DeviceStatus.FAILED)} AND cancel_reason IS NULL""",
                (reason, now, operation_id),
            )

    def abort(self, operation_id: str, reason: str) -> None:
        """Stop dispatching an operation whose rollout failed; commands already out run to their end."""
        with self._store.transaction() as conn:
            self._stop(conn, operation_id, reason, None)

    def _stop(self, conn: Connection, operation_id: str, reason: str, actor: str | None) -> None:
        """Record the stop and end FAILED every command not yet handed to the broker."""
        operation = self._store.operations.get(operation_id)
        if is_terminal_operation(operation.state):
            raise Conflict(f"operation {operation_id} has already ended ({operation.state})")
        if operation.stop_reason is not None:
            raise Conflict(f"operation {operation_id} is already being stopped ({operation.stop_reason})")
        now = now_iso()
        conn.execute(
            """UPDATE operations SET stop_reason = ?, updated_at = ?, updated_by = coalesce(?, updated_by)
               WHERE id = ?""",
            (reason, now, actor, operation_id),
        )
        if operation.state in (OperationState.CREATED, OperationState.RESOLVING):
            # No commands exist yet, so there is nothing to wait for.
            self._store.operations.transition_in(
                conn, operation_id, OperationState.FAILED, ActivityState.FAILURE, reason, reason, actor or SYSTEM_ACTOR
            )
            return
        # Each leaves the dispatch queue; one a client already ended keeps its final status and reason.
        conn.execute(
            f"""UPDATE device_operations SET dispatch_state = 'failed', cleared = 1, updated_at = ?2,
                   status = {if_may_become(DeviceStatus.FAILED, "'FAILED'", "status")},
                   failure_reason = {if_may_become(DeviceStatus.FAILED, "?1", "failure_reason")},
                   finished_at = {if_may_become(DeviceStatus.FAILED, "?2", "finished_at")}
               WHERE operation_id = ?3 AND dispatch_state = 'waiting'""",
            (reason, now, operation_id),
        )
        self._store.operations.add_activity_in(conn, operation_id, ActivityState.PROCESSING, reason)

    def pending_cancellations(self, limit: int) -> list[CancelOrder]:
        columns = "operation_id, device_id, command_id, cancel_reason"
        rows = fetch_rows(
            self._store.conn,
            f"""SELECT {self._store.dialect.array_of_arrays(columns)} FROM (
                   SELECT {columns} FROM device_operations
                   WHERE cancel_reason IS NOT NULL AND cancel_sent = 0 LIMIT ?) AS pending""",
            (limit,),
        )
        return [CancelOrder(*row) for row in rows]

    def mark_cancellations_sent(self, orders: list[CancelOrder]) -> None:
        """The broker has the cancellations: each is awaited from its device (controller/store/cancellations.py)."""
        command_ids = [order.command_id for order in orders]
        with self._store.transaction() as conn:
            conn.execute(
                f"UPDATE device_operations SET cancel_sent = 1 WHERE command_id IN ({self._store.dialect.values('?')})",
                (packed(command_ids),),
            )
            self._store.cancellations.watch(conn, command_ids, now_iso())

    def watched_rollouts(self) -> list[tuple[str, dict[str, Any]]]:
        """(operation id, rollout) of dispatching operations with an abort rule, not yet stopped."""
        rows = self._store.conn.execute(
            f"""SELECT id, rollout FROM operations
               WHERE state = 'DISPATCHING' AND stop_reason IS NULL
                   AND {self._store.dialect.json_text("rollout", "abort_failure_share")} IS NOT NULL"""
        )
        return [(row[0], json.loads(row[1])) for row in rows]

    def stopping(self) -> list[str]:
        """Operations that were cancelled or aborted and have not ended yet."""
        rows = self._store.conn.execute(
            "SELECT id FROM operations WHERE stop_reason IS NOT NULL AND state NOT IN ('COMPLETED', 'FAILED')"
        )
        return [row[0] for row in rows]
