"""/devicecontrol's view of the store: every device of every operation is one Cumulocity operation.

Its id is the row's sequence number, so ids are numeric strings and creation order is id order. DELETE hides rows
from this view (`hidden`) rather than erasing them, so /v0 keeps the history of its operations. Fragments a client
adds with PUT are the row's own (`updated_fragments`): a /v0 operation's devices each have theirs.
"""

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso
from controller.errors import Conflict, NotFound, TooLarge
from controller.store.connection import Row
from controller.store.dialect import Dialect
from controller.store.moves import if_may_become, may_become
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
class Page:
    """Which of the matching operations, in creation order: by default all of them."""

    revert: bool = False
    """Newest first."""
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class DeviceControlRow:
    id: str
    device_id: str
    device_name: str
    """The hostname the device announced, else its id (the name it was configured with)."""
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
    updated_fragments: dict[str, Any]
    """Added or replaced by PUT, over those the operation was created with."""


_FROM = "FROM device_operations AS d JOIN operations AS o ON o.id = d.operation_id"


def _select(dialect: Dialect) -> str:
    hostname = dialect.json_text("v.inventory", "hostname")
    return f"""SELECT d.seq, d.device_id, d.status, d.created_at, d.operation_id, o.operation_type, o.arguments,
                      o.fragments, o.description, d.result, d.failure_reason, d.updated_fragments,
                      CASE {dialect.json_type("v.inventory", "hostname")} WHEN 'text' THEN {hostname} END AS hostname
               {_FROM} LEFT JOIN devices AS v ON v.device_id = d.device_id"""


class DeviceControlView:
    def __init__(self, store: "Store") -> None:
        self._store = store
        self._select = _select(store.dialect)

    def get(self, operation_id: str) -> DeviceControlRow:
        row = self._store.conn.execute(
            f"{self._select} WHERE d.seq = ? AND d.hidden = 0", (_seq(operation_id),)
        ).fetchone()
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
            "SELECT command_id, device_id, status, operation_id FROM device_operations WHERE seq = ? AND hidden = 0",
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

    def update_fragments(self, operation_id: str, changes: dict[str, Any], limit: int) -> None:
        """A client's PUT: add or replace these fragments whole; a fragment given as None is removed.

        What they add up to is held to `limit` bytes, a body's: else PUT after PUT grows one operation without end."""
        seq = _seq(operation_id)
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT updated_fragments FROM device_operations WHERE seq = ? AND hidden = 0", (seq,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no operation with id {operation_id!r}")
            fragments = {**_loads(row["updated_fragments"]), **changes}
            kept = {name: value for name, value in fragments.items() if value is not None}
            stored = json.dumps(kept) if kept else None
            if stored is not None and len(stored.encode()) > limit:
                raise TooLarge(
                    f"the operation's fragments would exceed the {limit}-byte limit on a body; remove some (null) first"
                )
            conn.execute(
                "UPDATE device_operations SET updated_fragments = ?, updated_at = ? WHERE seq = ?",
                (stored, now_iso(), seq),
            )

    def hide(self, filters: DeviceControlFilters, reason: str, page: Page = Page()) -> set[str]:
        """DELETE: hide the matching operations (`page` of them); unfinished ones end FAILED with `reason` and their
        devices are told.

        Returns the /v0 operations they belong to.
        """
        dialect = self._store.dialect
        selected, params = _selected(filters, page, dialect)
        now = now_iso()
        marked = dialect.typed_values("?3", "seq")
        with self._store.transaction() as conn:
            rows = conn.execute(f"SELECT d.seq, d.operation_id {_FROM} {selected}", params).fetchall()
            marks = json.dumps([row["seq"] for row in rows])
            # Each waiting one leaves the dispatch queue; one a client already ended keeps its final status.
            conn.execute(
                f"""UPDATE device_operations SET dispatch_state = 'failed', cleared = 1, updated_at = ?2,
                       status = {if_may_become(DeviceStatus.FAILED, "'FAILED'", "status")},
                       failure_reason = {if_may_become(DeviceStatus.FAILED, "?1", "failure_reason")},
                       finished_at = {if_may_become(DeviceStatus.FAILED, "?2", "finished_at")}
                   WHERE seq IN ({marked}) AND dispatch_state = 'waiting'""",
                (reason, now, marks),
            )
            conn.execute(
                f"""UPDATE device_operations SET status = 'FAILED', failure_reason = ?1, cancel_reason = ?1,
                       finished_at = ?2, updated_at = ?2
                   WHERE seq IN ({marked}) AND {may_become(DeviceStatus.FAILED)}""",
                (reason, now, marks),
            )
            conn.execute(
                f"UPDATE device_operations SET hidden = 1 WHERE seq IN ({dialect.typed_values('?', 'seq')})",
                (marks,),
            )
        return {row["operation_id"] for row in rows}

    def page(
        self, filters: DeviceControlFilters, page: Page, *, with_total: bool
    ) -> tuple[list[DeviceControlRow], int | None]:
        """One page in creation order (newest first with `revert`), and the total if asked for."""
        selected, params = _selected(filters, page, self._store.dialect)
        rows = self._store.conn.execute(f"{self._select} {selected}", params)
        total = None
        if with_total:
            clauses, where_params = _where(filters, self._store.dialect)
            total = self._store.conn.execute(f"SELECT count(*) {_FROM} WHERE {clauses}", where_params).fetchone()[0]
        return [_row(row) for row in rows], total


def _seq(operation_id: str) -> int:
    # isascii() too: str.isdigit() is also true of digits int() refuses, such as "²".
    if not (operation_id.isascii() and operation_id.isdigit()) or len(operation_id) > 18:
        raise NotFound(f"no operation with id {operation_id!r}")
    return int(operation_id)


def _selected(filters: DeviceControlFilters, page: Page, dialect: Dialect) -> tuple[str, list[Any]]:
    """WHERE, ORDER BY, LIMIT and OFFSET of a page of matching rows, with their parameters, for GET and DELETE."""
    clauses, params = _where(filters, dialect)
    order = "DESC" if page.revert else "ASC"
    # No limit: SQLite takes no OFFSET without a LIMIT, and PostgreSQL no negative LIMIT.
    limit = _NO_LIMIT if page.limit is None else page.limit
    return f"WHERE {clauses} ORDER BY d.seq {order} LIMIT ? OFFSET ?", [*params, limit, page.offset]


_NO_LIMIT = 2**63 - 1


def _where(filters: DeviceControlFilters, dialect: Dialect) -> tuple[str, list[Any]]:
    """The conditions of the filters (visible rows only), joined with AND, and their parameters."""
    clauses = ["d.hidden = 0"]
    params: list[Any] = []
    fragment = filters.fragment_type
    for clause, values in (
        ("d.device_id = ?", (filters.device_id,)),
        ("d.status = ?", (None if filters.status is None else str(filters.status),)),
        # The fragment the operation runs, or one a client added with PUT.
        (
            f"(o.fragment_type = ? OR {dialect.json_object_has('d.updated_fragments', '?')})",
            (fragment, fragment),
        ),
        ("d.created_at >= ?", (filters.date_from,)),
        ("d.created_at <= ?", (filters.date_to,)),
        ("d.operation_id = ?", (filters.bulk_operation_id,)),
    ):
        if values[0] is not None:
            clauses.append(clause)
            params.extend(values)
    return " AND ".join(clauses), params


def _row(row: Row) -> DeviceControlRow:
    return DeviceControlRow(
        id=str(row["seq"]),
        device_id=row["device_id"],
        device_name=row["hostname"] or row["device_id"],
        status=DeviceStatus(row["status"]),
        creation_time=row["created_at"],
        operation_id=row["operation_id"],
        operation_type=OperationType(row["operation_type"]),
        arguments=json.loads(row["arguments"]),
        fragments=None if row["fragments"] is None else json.loads(row["fragments"]),
        description=row["description"],
        result=None if row["result"] is None else json.loads(row["result"]),
        failure_reason=row["failure_reason"],
        updated_fragments=_loads(row["updated_fragments"]),
    )


def _loads(stored: str | None) -> dict[str, Any]:
    loaded: dict[str, Any] = {} if stored is None else json.loads(stored)
    return loaded
