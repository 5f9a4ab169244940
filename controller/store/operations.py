"""Operations: their creation, lifecycle moves and activity log, and the device counts the schema's triggers keep."""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso
from controller.errors import NotFound
from controller.fragments import fragment_type_of
from controller.ids import time_ordered_id
from controller.store.connection import Connection, Row
from controller.store.dialect import Dialect
from controller.store.json_columns import dumped, loaded
from controller.store.records import (
    SYSTEM_ACTOR,
    ActivityEntry,
    FleetSnapshot,
    LoggedActivity,
    OperationRecord,
    OperationStats,
    Page,
)
from shared.lifecycle import advance_operation
from shared.operations import ActivityState, OperationState, OperationType, ScheduleType
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, default_timeout_s

if TYPE_CHECKING:
    from controller.store import Store


class OperationLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store
        self._operation_read = _operation_read(store.dialect)

    def create(
        self,
        *,
        operation_type: OperationType,
        schedule_type: ScheduleType,
        schedule_args: dict[str, Any] | None,
        device_query: dict[str, Any],
        arguments: dict[str, Any],
        created_by: str,
        timeout_s: int,
        delivery_timeout_s: int,
        rollout: dict[str, Any] | None = None,
        fragments: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> str:
        """`fragments` and `description` are set for an operation created through /devicecontrol."""
        operation_id = time_ordered_id()
        now = now_iso()
        with self._store.transaction() as conn:
            conn.execute(
                """INSERT INTO operations (id, operation_type, state, schedule_type, schedule_args, device_query,
                       arguments, created_at, created_by, updated_at, updated_by, timeout_s, delivery_timeout_s,
                       rollout, fragments, description, fragment_type)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    operation_id,
                    operation_type,
                    OperationState.CREATED,
                    schedule_type,
                    dumped(schedule_args),
                    dumped(device_query),
                    dumped(arguments),
                    now,
                    created_by,
                    now,
                    created_by,
                    timeout_s,
                    delivery_timeout_s,
                    dumped(rollout),
                    dumped(fragments),
                    description,
                    next(iter(fragments)) if fragments else fragment_type_of(operation_type, arguments),
                ),
            )
            self._add_activity(conn, operation_id, "CREATED", now, None)
        return operation_id

    def transition(
        self,
        operation_id: str,
        new_state: OperationState,
        *,
        activity: str | None = None,
        message: str | None = None,
        reason: str | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """Move an operation to `new_state` if the lifecycle allows it, logging `activity` in the same transaction."""
        with self._store.transaction() as conn:
            self.transition_in(conn, operation_id, new_state, activity, message, reason, actor)

    def transition_in(
        self,
        conn: Connection,
        operation_id: str,
        new_state: OperationState,
        activity: str | None,
        message: str | None,
        reason: str | None,
        actor: str,
    ) -> None:
        advance_operation(self.state(operation_id), new_state)
        now = now_iso()
        conn.execute(
            """UPDATE operations SET state = ?, reason = coalesce(?, reason), updated_at = ?, updated_by = ?
               WHERE id = ?""",
            (new_state, reason, now, actor, operation_id),
        )
        if activity is not None:
            self._add_activity(conn, operation_id, activity, now, message)

    def state(self, operation_id: str) -> OperationState:
        row = self._store.conn.execute("SELECT state FROM operations WHERE id = ?", (operation_id,)).fetchone()
        if row is None:
            raise NotFound(f"no operation with id {operation_id!r}")
        return OperationState(row["state"])

    def start_dispatching(self, operation_id: str) -> None:
        """RESOLVED -> DISPATCHING, remembering when, which a rate-limited rollout counts from."""
        with self._store.transaction() as conn:
            self.transition_in(
                conn, operation_id, OperationState.DISPATCHING, ActivityState.DISPATCHING, None, None, SYSTEM_ACTOR
            )
            conn.execute("UPDATE operations SET dispatch_started_at = ? WHERE id = ?", (now_iso(), operation_id))

    def add_activity_in(self, conn: Connection, operation_id: str, operation_state: str, message: str | None) -> None:
        """Within the caller's transaction."""
        self._add_activity(conn, operation_id, operation_state, now_iso(), message)

    @staticmethod
    def _add_activity(conn: Connection, operation_id: str, state: str, timestamp: str, message: str | None) -> None:
        # The operation's state after this entry is recorded with it, so the log replays as a sequence of states.
        conn.execute(
            """INSERT INTO operation_activity (operation_id, operation_state, timestamp, message, state)
               VALUES (?, ?, ?, ?, (SELECT state FROM operations WHERE id = ?))""",
            (operation_id, state, timestamp, message, operation_id),
        )

    def add_activity_once(self, operation_id: str, operation_state: str, message: str) -> bool:
        """Log an entry unless the operation's log has one of that state; True if it was logged now.

        Checked and written in one transaction: dispatch and ingest log such entries from two threads.
        """
        if self.has_activity(operation_id, operation_state):
            return False
        with self._store.transaction() as conn:
            if self.has_activity(operation_id, operation_state):
                return False
            self.add_activity_in(conn, operation_id, operation_state, message)
        return True

    def has_activity(self, operation_id: str, operation_state: str) -> bool:
        row = self._store.conn.execute(
            "SELECT 1 FROM operation_activity WHERE operation_id = ? AND operation_state = ? LIMIT 1",
            (operation_id, operation_state),
        ).fetchone()
        return row is not None

    def last_activity_seq(self) -> int:
        return int(self._store.conn.execute("SELECT coalesce(max(seq), 0) FROM operation_activity").fetchone()[0])

    def activity_after(self, seq: int, limit: int) -> list[LoggedActivity]:
        """Entries of every operation's activity log written after `seq`, oldest first."""
        rows = self._store.conn.execute(
            """SELECT a.seq, a.operation_id, a.operation_state, a.timestamp, a.message,
                      coalesce(a.state, o.state) AS state, o.reason
               FROM operation_activity a JOIN operations o ON o.id = a.operation_id
               WHERE a.seq > ? ORDER BY a.seq LIMIT ?""",
            (seq, limit),
        )
        return [
            LoggedActivity(
                operation_id=row["operation_id"],
                entry=ActivityEntry(row["seq"], row["operation_state"], row["timestamp"], row["message"]),
                state=OperationState(row["state"]),
                reason=row["reason"],
            )
            for row in rows
        ]

    def get(self, operation_id: str) -> OperationRecord:
        row = self._store.conn.execute(f"{self._operation_read} WHERE o.id = ?", (operation_id,)).fetchone()
        if row is None:
            raise NotFound(f"no operation with id {operation_id!r}")
        return self._operation(row)

    def page(
        self,
        *,
        state: OperationState | None = None,
        operation_type: OperationType | None = None,
        limit: int,
        offset: int,
    ) -> Page[OperationRecord]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(str(state))
        if operation_type is not None:
            clauses.append("operation_type = ?")
            params.append(str(operation_type))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self._store.conn.execute(f"SELECT count(*) FROM operations {where}", params).fetchone()[0]
        rows = self._store.conn.execute(
            f"{self._operation_read} {where} ORDER BY o.seq DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
        return Page([self._operation(row) for row in rows], total)

    def in_states(self, states: Sequence[OperationState]) -> dict[str, tuple[OperationState, str | None]]:
        """id -> (state, reason) of every operation in one of `states`, oldest first."""
        dialect = self._store.dialect
        rows = self._store.conn.execute(
            f"SELECT id, state, reason FROM operations WHERE state IN ({dialect.values('?')}) ORDER BY seq",
            (dumped([str(s) for s in states]),),
        )
        return {row["id"]: (OperationState(row["state"]), row["reason"]) for row in rows}

    def fleet_snapshot(self) -> FleetSnapshot:
        """Operations by state (every state, 0 included), unfinished commands by status, devices registered and
        online: a few indexed aggregates, however large the history."""
        states = {str(state): 0 for state in OperationState}
        states |= dict(self._store.conn.execute("SELECT state, count(*) FROM operations GROUP BY state").fetchall())
        unfinished = self._store.conn.execute(
            # Cast: PostgreSQL sums integers as numeric (Decimal in Python).
            """SELECT CAST(coalesce(sum(c.waiting), 0) AS BIGINT), CAST(coalesce(sum(c.pending), 0) AS BIGINT),
                      CAST(coalesce(sum(c.executing), 0) AS BIGINT)
               FROM operations AS o JOIN operation_counts AS c ON c.operation_id = o.id
               WHERE o.state NOT IN ('COMPLETED', 'FAILED')"""
        ).fetchone()
        devices, online = self._store.conn.execute(
            "SELECT count(*), CAST(coalesce(sum(online), 0) AS BIGINT) FROM devices"
        ).fetchone()
        return FleetSnapshot(
            operations_by_state=states,
            unfinished_commands=dict(zip(("waiting", "pending", "executing"), unfinished, strict=True)),
            devices=devices,
            online=online,
        )

    def stats(self, operation_id: str) -> OperationStats:
        return self.stats_of([operation_id]).get(operation_id, OperationStats())

    def stats_of(self, operation_ids: Sequence[str]) -> dict[str, OperationStats]:
        """The device counts of several operations, kept up to date by the schema's triggers; one without devices
        is left out."""
        rows = self._store.conn.execute(
            f"SELECT * FROM operation_counts WHERE operation_id IN ({self._store.dialect.values('?')})",
            (dumped(list(operation_ids)),),
        )
        return {row["operation_id"]: stats_from_counts(row) for row in rows}

    def _operation(self, row: Row) -> OperationRecord:
        """An operation from one row of _operation_read."""
        operation_type = OperationType(row["operation_type"])
        arguments = loaded(row["arguments"])
        return OperationRecord(
            id=row["id"],
            operation_type=operation_type,
            state=OperationState(row["state"]),
            schedule_type=ScheduleType(row["schedule_type"]),
            schedule_args=loaded(row["schedule_args"]),
            device_query=loaded(row["device_query"]),
            arguments=arguments,
            reason=row["reason"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
            activity=tuple(ActivityEntry(*entry) for entry in sorted(_arrays(row["activity"]))),
            stats=OperationStats() if row["resolved"] is None else stats_from_counts(row),
            timeout_s=row["timeout_s"] or default_timeout_s(operation_type, arguments),
            delivery_timeout_s=row["delivery_timeout_s"] or DEFAULT_DELIVERY_TIMEOUT_S,
            rollout=loaded(row["rollout"]),
            stop_reason=row["stop_reason"],
            dispatch_started_at=row["dispatch_started_at"],
            next_dispatch_at=row["next_opening"],
        )


def stats_from_counts(row: Row) -> OperationStats:
    """An operation's device counts from a row with the columns of operation_counts."""
    return OperationStats(
        resolved_device_count=row["resolved"],
        dispatched_device_count=row["dispatched"],
        dispatch_failed_count=row["dispatch_failed"],
        failed_device_count=row["failed"],
        success_device_count=row["success"],
        unfinished_device_count=row["waiting"] + row["pending"] + row["executing"],
        waiting_device_count=row["waiting"],
        pending_device_count=row["pending"],
        executing_device_count=row["executing"],
    )


def _operation_read(dialect: Dialect) -> str:
    """An operation with its counts, its activity log and its next window opening, in one statement: one snapshot,
    and one wait for the interpreter lock instead of four for a GET while ingest and dispatch keep it busy."""
    activity = dialect.array_of_arrays("a.seq, a.operation_state, a.timestamp, a.message")
    return f"""SELECT o.*, c.resolved, c.dispatched, c.dispatch_failed, c.failed, c.success, c.waiting, c.pending,
            c.executing,
            (SELECT {activity} FROM operation_activity AS a WHERE a.operation_id = o.id) AS activity,
            (SELECT min(d.not_before) FROM device_operations AS d
             WHERE d.operation_id = o.id AND d.dispatch_state = 'waiting') AS next_opening
        FROM operations AS o LEFT JOIN operation_counts AS c ON c.operation_id = o.id"""


def _arrays(value: str | list[list[Any]] | None) -> list[list[Any]]:
    """A column aggregated by Dialect.array_of_arrays: SQLite's JSON text, or the lists psycopg decoded; NULL for
    none on PostgreSQL."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value
