"""Deadlines, cancellation and aborts in a real store on each engine, and the SQLite migration that added them."""

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.clock import to_iso
from controller.completion import finish_if_done
from controller.errors import Conflict
from controller.keys import hash_key
from controller.store import Store
from controller.store import control as control_module
from controller.store.commands import CommandLedger, Deadline
from controller.store.connection import Connection, Row
from controller.store.database import Database
from controller.store.devicecontrol import DeviceControlFilters
from shared.messages import Announcement, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationState, OperationType, Platform, ScheduleType

PAST = Deadline(to_iso(datetime.now(UTC) - timedelta(seconds=1)), "timed out: not started within 5 s of dispatch")
FUTURE = Deadline(to_iso(datetime.now(UTC) + timedelta(hours=1)), "timed out: not started within 3600 s of dispatch")


def operation(store: Store, devices: list[str], timeout_s: int = 600) -> str:
    for device_id in devices:
        store.devices.record_announcement(
            Announcement(device_id=device_id, platform=Platform.LINUX, agent_version="0.1.0", announced_at=utc_now())
        )
    operation_id = store.operations.create(
        operation_type=OperationType.RUN_SHELL_SCRIPT,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query={"all": True},
        arguments={"script": "true"},
        created_by="ops",
        timeout_s=timeout_s,
        delivery_timeout_s=5,
    )
    store.operations.transition(operation_id, OperationState.RESOLVING)
    store.commands.add_targets(operation_id, devices)
    store.commands.resolved(operation_id, len(devices))
    store.operations.start_dispatching(operation_id)
    return operation_id


def commands(store: Store, operation_id: str) -> dict[str, str]:
    page = store.commands.list_for_operation(operation_id, status=None, limit=100, offset=0)
    return {record.device_id: record.command_id for record in page.items}


def report(command_id: str, device_id: str, status: DeviceStatus, reason: str | None = None) -> StatusReport:
    return StatusReport(
        command_id=command_id, device_id=device_id, status=status, timestamp=utc_now(), failure_reason=reason
    )


def device_row(store: Store, command_id: str) -> Row:
    row: Row = store.conn.execute("SELECT * FROM device_operations WHERE command_id = ?", (command_id,)).fetchone()
    return row


def test_a_command_not_started_by_its_deadline_fails_and_is_to_be_cleared_and_cancelled(store: Store) -> None:
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(c, PAST) for c in [ids["a"]]])
    store.commands.mark_dispatched([(c, FUTURE) for c in [ids["b"]]])

    assert store.control.expire(100) == {operation_id}

    a, b = device_row(store, ids["a"]), device_row(store, ids["b"])
    assert (a["status"], a["failure_reason"], a["cleared"]) == ("FAILED", PAST.reason, 0)
    assert b["status"] == "PENDING"
    assert [(o.device_id, o.reason) for o in store.control.pending_cancellations(10)] == [("a", PAST.reason)]
    assert store.commands.uncleared_terminal(10) == [("a", ids["a"])]
    assert store.control.expire(100) == set()


def test_starting_replaces_the_delivery_deadline_with_the_execution_timeout(store: Store) -> None:
    operation_id = operation(store, ["a"], timeout_s=1200)
    command_id = commands(store, operation_id)["a"]
    store.commands.mark_dispatched([(c, PAST) for c in [command_id]])

    store.commands.apply_statuses([("a", report(command_id, "a", DeviceStatus.EXECUTING))])

    row = device_row(store, command_id)
    assert row["deadline_reason"] == "timed out: no final status within 1200 s of starting"
    remaining = datetime.fromisoformat(row["deadline_at"]) - datetime.now(UTC)
    assert timedelta(seconds=1190) < remaining <= timedelta(seconds=1200)
    assert store.control.expire(100) == set()


def test_a_late_status_cannot_resurrect_a_timed_out_device(store: Store) -> None:
    operation_id = operation(store, ["a"])
    command_id = commands(store, operation_id)["a"]
    store.commands.mark_dispatched([(c, PAST) for c in [command_id]])
    store.control.expire(100)

    outcome = store.commands.apply_statuses([("a", report(command_id, "a", DeviceStatus.SUCCESSFUL))])

    assert outcome.applied == 0
    assert device_row(store, command_id)["status"] == "FAILED"
    assert finish_if_done(store, operation_id)
    assert store.operations.get(operation_id).state is OperationState.COMPLETED


def test_cancel_fails_what_has_not_started_and_asks_running_devices_to_stop(store: Store) -> None:
    operation_id = operation(store, ["waiting", "unacknowledged", "queued", "running", "done"])
    ids = commands(store, operation_id)
    dispatched = [ids[d] for d in ("unacknowledged", "queued", "running", "done")]
    store.commands.mark_dispatched([(c, FUTURE) for c in dispatched])
    store.commands.apply_statuses(
        [
            ("queued", report(ids["queued"], "queued", DeviceStatus.PENDING)),
            ("running", report(ids["running"], "running", DeviceStatus.EXECUTING)),
            ("done", report(ids["done"], "done", DeviceStatus.SUCCESSFUL)),
        ]
    )

    store.control.cancel(operation_id, "alice")

    statuses = {d: (device_row(store, c)["status"], device_row(store, c)["failure_reason"]) for d, c in ids.items()}
    assert statuses == {
        "waiting": ("FAILED", "cancelled by alice"),
        "unacknowledged": ("FAILED", "cancelled by alice"),
        "queued": ("PENDING", None),
        "running": ("EXECUTING", None),
        "done": ("SUCCESSFUL", None),
    }
    orders = {o.device_id for o in store.control.pending_cancellations(10)}
    assert orders == {"unacknowledged", "queued", "running"}
    stats = store.operations.stats(operation_id)
    assert (stats.dispatch_failed_count, stats.failed_device_count) == (1, 1)
    assert not finish_if_done(store, operation_id)  # two devices are still deciding

    store.commands.apply_statuses(
        [
            ("queued", report(ids["queued"], "queued", DeviceStatus.FAILED, "cancelled by alice")),
            ("running", report(ids["running"], "running", DeviceStatus.SUCCESSFUL)),  # could not be stopped
        ]
    )
    assert finish_if_done(store, operation_id)
    ended = store.operations.get(operation_id)
    assert (ended.state, ended.reason) == (OperationState.FAILED, "cancelled by alice")
    assert ended.activity[-1].message == "cancelled by alice; 2 succeeded, 3 failed of 5 device(s)"


def test_cancelling_twice_or_after_the_end_is_a_conflict(store: Store) -> None:
    operation_id = operation(store, ["a"])
    store.control.cancel(operation_id, "alice")
    with pytest.raises(Conflict, match="already being stopped"):
        store.control.cancel(operation_id, "bob")
    assert finish_if_done(store, operation_id)
    with pytest.raises(Conflict, match="has already ended"):
        store.control.cancel(operation_id, "bob")


def test_an_operation_cancelled_before_resolving_fails_at_once(store: Store) -> None:
    operation_id = store.operations.create(
        operation_type=OperationType.LOCK,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query={"all": True},
        arguments={},
        created_by="ops",
        timeout_s=600,
        delivery_timeout_s=600,
    )
    store.control.cancel(operation_id, "alice")
    ended = store.operations.get(operation_id)
    assert (ended.state, ended.reason) == (OperationState.FAILED, "cancelled by alice")


def test_a_command_stopped_while_being_published_is_reported_back(store: Store) -> None:
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)
    store.control.abort(operation_id, "aborted: too many failures")

    stopped = store.commands.mark_dispatched([(c, FUTURE) for c in list(ids.values())])

    assert stopped == set(ids.values())
    assert {device_row(store, c)["dispatch_state"] for c in ids.values()} == {"failed"}


def test_abort_fails_what_is_left_to_dispatch_and_the_operation_ends_failed(store: Store) -> None:
    operation_id = operation(store, ["a", "b", "c"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(c, FUTURE) for c in [ids["a"]]])
    store.commands.apply_statuses([("a", report(ids["a"], "a", DeviceStatus.FAILED, "exit 1"))])

    store.control.abort(operation_id, "aborted: 1 of 1 finished devices failed")

    assert device_row(store, ids["b"])["failure_reason"] == "aborted: 1 of 1 finished devices failed"
    assert store.control.pending_cancellations(10) == []
    assert finish_if_done(store, operation_id)
    assert store.operations.get(operation_id).reason == "aborted: 1 of 1 finished devices failed"


def test_watched_rollouts_are_those_with_an_abort_rule(store: Store) -> None:
    watched = operation(store, ["a"])
    store.conn.execute("UPDATE operations SET rollout = ? WHERE id = ?", ('{"abort_failure_share": 0.5}', watched))
    rated = operation(store, ["b"])
    store.conn.execute("UPDATE operations SET rollout = ? WHERE id = ?", ('{"rate_per_minute": 5}', rated))

    assert store.control.watched_rollouts() == [(watched, {"abort_failure_share": 0.5})]


def test_a_database_from_before_the_deadline_columns_is_migrated(tmp_path: Path) -> None:
    """SQLite's alone: Tether ran on PostgreSQL only once migrations were numbered."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
               operation_type TEXT NOT NULL, state TEXT NOT NULL, schedule_type TEXT NOT NULL, schedule_args TEXT,
               device_query TEXT NOT NULL, arguments TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL,
               created_by TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL);
           INSERT INTO operations VALUES (1, 'op-1', 'REBOOT', 'COMPLETED', 'IMMEDIATE', NULL, '{"all":true}', '{}',
               NULL, '2026-01-01T00:00:00.000Z', 'ops', '2026-01-01T00:00:00.000Z', 'ops');
           CREATE TABLE device_operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, command_id TEXT NOT NULL UNIQUE,
               operation_id TEXT NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL,
               dispatch_state TEXT NOT NULL DEFAULT 'waiting', cleared INTEGER NOT NULL DEFAULT 0,
               created_at TEXT NOT NULL, dispatched_at TEXT, received_at TEXT, started_at TEXT, finished_at TEXT,
               updated_at TEXT NOT NULL, result TEXT, failure_reason TEXT, progress INTEGER,
               UNIQUE (operation_id, device_id));"""
    )
    conn.close()

    store = Store(path)
    try:
        old = store.operations.get("op-1")
        assert (old.timeout_s, old.delivery_timeout_s, old.stop_reason) == (900, 86400, None)
        assert store.control.expire(10) == set()
    finally:
        store.close()


def test_a_window_end_before_the_timeout_becomes_the_execution_deadline(store: Store) -> None:
    operation_id = operation(store, ["a"], timeout_s=3600)
    command_id = commands(store, operation_id)["a"]
    window_end = to_iso(datetime.now(UTC) + timedelta(minutes=5))
    store.conn.execute("UPDATE device_operations SET window_end = ? WHERE command_id = ?", (window_end, command_id))
    store.commands.mark_dispatched([(command_id, Deadline(window_end, "schedule window ended"))])

    store.commands.apply_statuses([("a", report(command_id, "a", DeviceStatus.EXECUTING))])

    row = device_row(store, command_id)
    assert (row["deadline_at"], row["deadline_reason"]) == (window_end, "schedule window ended")


def test_a_status_for_a_command_still_recorded_as_waiting_marks_it_dispatched_for_good(store: Store) -> None:
    """The controller died between publishing and recording the dispatch; the device answered meanwhile."""
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)

    store.commands.apply_statuses(
        [("a", report(ids["a"], "a", DeviceStatus.PENDING)), ("b", report(ids["b"], "b", DeviceStatus.SUCCESSFUL))]
    )

    a, b = device_row(store, ids["a"]), device_row(store, ids["b"])
    assert (a["dispatch_state"], a["status"]) == ("dispatched", "PENDING")
    assert a["deadline_reason"] == "timed out: not started within 5 s of dispatch (device offline?)"
    assert a["dispatched_at"] is not None
    assert (b["dispatch_state"], b["status"], b["deadline_at"]) == ("dispatched", "SUCCESSFUL", None)
    assert store.commands.due(operation_id, 10) == []  # neither is ever published again...
    # Published again meanwhile: the finished one's clear may have reached the broker first, so it is taken back
    # again; the running one's final status will clear it.
    assert store.commands.mark_dispatched([(ids["a"], FUTURE), (ids["b"], FUTURE)]) == {ids["b"]}
    assert device_row(store, ids["a"])["deadline_reason"] == a["deadline_reason"]  # ...nor its deadline reset


def test_a_row_another_writer_ends_between_the_read_and_the_update_is_worked_out_again(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest works a batch out before taking the write lock; the API's connection (an operator setting a status)
    or the supervisor's may end a command in between, and its first final status must still stand."""
    store, operator = Store(database), Store(database)
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)
    read = CommandLedger._rows
    reads = []

    def read_then_end_a(ledger: CommandLedger, command_ids: set[str]) -> Any:
        rows = read(ledger, command_ids)
        if ledger is not store.commands:
            return rows
        reads.append(sorted(command_ids))
        if len(reads) == 1:
            operator.commands.apply_statuses(
                [("a", report(ids["a"], "a", DeviceStatus.FAILED, "by hand"))], from_devices=False
            )
        return rows

    monkeypatch.setattr(CommandLedger, "_rows", read_then_end_a)
    outcome = store.commands.apply_statuses(
        [("a", report(ids["a"], "a", DeviceStatus.SUCCESSFUL)), ("b", report(ids["b"], "b", DeviceStatus.SUCCESSFUL))]
    )

    assert len(reads) == 2  # read again, inside the transaction
    assert device_row(store, ids["a"])["status"] == "FAILED"
    assert device_row(store, ids["a"])["failure_reason"] == "by hand"
    assert device_row(store, ids["b"])["status"] == "SUCCESSFUL"
    assert outcome.applied == 1
    assert outcome.rejected == [(ids["a"], "already FAILED; the first final status stands")]
    assert outcome.to_clear == [("b", ids["b"])]
    assert store.operations.stats(operation_id).failed_device_count == 1
    assert store.operations.stats(operation_id).success_device_count == 1
    operator.close()
    store.close()


def test_a_finished_command_owes_its_clear_until_it_is_cleared_and_one_never_published_owes_none(
    store: Store,
) -> None:
    operation_id = operation(store, ["a", "b", "c"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(ids["a"], FUTURE), (ids["b"], FUTURE)])
    store.commands.mark_dispatch_failed([(ids["c"], "no C")])

    outcome = store.commands.apply_statuses(
        [
            ("a", report(ids["a"], "a", DeviceStatus.EXECUTING)),
            ("a", report(ids["a"], "a", DeviceStatus.SUCCESSFUL)),
            ("b", report(ids["b"], "b", DeviceStatus.EXECUTING)),
        ]
    )
    assert outcome.to_clear == [("a", ids["a"])]
    assert store.commands.uncleared_terminal(10) == [("a", ids["a"])]
    store.commands.mark_cleared([ids["a"]])
    store.commands.mark_cleared([ids["a"]])  # again, as a sweep may while ingest's clear awaits its acknowledgement
    assert store.commands.uncleared_terminal(10) == []

    for reason in ("broke", "a late duplicate, refused"):
        store.commands.apply_statuses([("b", report(ids["b"], "b", DeviceStatus.FAILED, reason))])
    assert store.commands.uncleared_terminal(10) == [("b", ids["b"])]


def test_each_command_refused_at_dispatch_keeps_its_own_reason(store: Store) -> None:
    operation_id = operation(store, ["a", "b", "c"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(ids["c"], FUTURE)])

    store.commands.mark_dispatch_failed([(ids["a"], "no A"), (ids["b"], "no B"), (ids["c"], "too late")])

    a, b, c = (device_row(store, ids[name]) for name in "abc")
    assert (a["status"], a["dispatch_state"], a["failure_reason"], a["cleared"]) == ("FAILED", "failed", "no A", 1)
    assert (b["failure_reason"], b["finished_at"] is not None) == ("no B", True)
    assert (c["status"], c["dispatch_state"], c["failure_reason"]) == ("PENDING", "dispatched", None)  # already out


def test_a_token_issued_again_replaces_the_first(store: Store) -> None:
    first = store.artifacts.issue_tokens(["c-1", "c-2"])
    again = store.artifacts.issue_tokens(["c-1"])
    stored = dict(store.conn.execute("SELECT command_id, token_hash FROM artifacts").fetchall())
    assert stored == {"c-1": hash_key(again["c-1"]), "c-2": hash_key(first["c-2"])}


def test_one_batch_of_every_shape_stores_each_command_s_own_net_change(store: Store) -> None:
    operation_id = operation(store, ["a", "b", "c", "d", "e"], timeout_s=1200)
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(command_id, FUTURE) for command_id in ids.values()])
    at = [datetime(2026, 12, 3, 18, 0, second, 123000, tzinfo=UTC) for second in range(6)]

    def moment(device_id: str, status: DeviceStatus, when: datetime, **fields: Any) -> tuple[str, StatusReport]:
        return (
            device_id,
            StatusReport(command_id=ids[device_id], device_id=device_id, status=status, timestamp=when, **fields),
        )

    store.commands.apply_statuses([moment("e", DeviceStatus.PENDING, at[0])])  # e starts from an earlier batch
    outcome = store.commands.apply_statuses(
        [
            moment("a", DeviceStatus.PENDING, at[1]),
            moment("b", DeviceStatus.PENDING, at[1]),
            moment("b", DeviceStatus.EXECUTING, at[2], progress=40),
            moment("c", DeviceStatus.PENDING, at[1]),
            moment("c", DeviceStatus.EXECUTING, at[2]),
            moment("c", DeviceStatus.SUCCESSFUL, at[3], result={"exit_code": 0}),
            moment("d", DeviceStatus.EXECUTING, at[2]),
            moment("d", DeviceStatus.FAILED, at[4], failure_reason="exit 3"),
            moment("e", DeviceStatus.EXECUTING, at[5]),
        ]
    )

    assert outcome.applied == 9
    assert outcome.rejected == []
    rows = {device_id: device_row(store, command_id) for device_id, command_id in ids.items()}
    columns = ("status", "received_at", "started_at", "finished_at", "result", "failure_reason", "progress")
    stored = {device_id: tuple(row[column] for column in columns) for device_id, row in rows.items()}
    text = [to_iso(moment) for moment in at]
    assert stored == {
        "a": ("PENDING", text[1], None, None, None, None, None),
        "b": ("EXECUTING", text[1], text[2], None, None, None, 40),
        "c": ("SUCCESSFUL", text[1], text[2], text[3], '{"exit_code":0}', None, None),
        "d": ("FAILED", text[2], text[2], text[4], None, "exit 3", None),
        "e": ("EXECUTING", text[0], text[5], None, None, None, None),
    }
    execution = "timed out: no final status within 1200 s of starting"
    assert [rows[device_id]["deadline_reason"] for device_id in "abcde"] == [FUTURE.reason, *[execution] * 4]
    assert rows["a"]["deadline_at"] == FUTURE.at
    assert len({row["updated_at"] for row in rows.values()}) == 1  # the batch's moment, taken once


def test_time_the_controller_could_not_hear_moves_unfinished_deadlines_on_and_is_recorded(store: Store) -> None:
    operation_id = operation(store, ["late", "running", "done"])
    ids = commands(store, operation_id)
    now = datetime.now(UTC)
    passed = Deadline(to_iso(now - timedelta(seconds=1)), "timed out: not started within 5 s of dispatch")
    store.commands.mark_dispatched([(ids[d], passed) for d in ids])
    store.commands.apply_statuses([("running", report(ids["running"], "running", DeviceStatus.EXECUTING))])
    store.commands.apply_statuses([("done", report(ids["done"], "done", DeviceStatus.SUCCESSFUL))])
    before = {d: device_row(store, ids[d])["deadline_at"] for d in ids}
    assert store.control.last_heard() is None

    assert store.control.heard(now, postpone_s=90.5) == 2

    after = {d: device_row(store, ids[d])["deadline_at"] for d in ids}
    for device_id in ("late", "running"):
        assert after[device_id] == to_iso(datetime.fromisoformat(before[device_id]) + timedelta(seconds=90.5))
    assert after["done"] == before["done"]  # finished: its deadline no longer matters
    assert store.control.expire(100) == set()  # a second ago plus 90 s has not passed
    assert store.control.last_heard() == datetime.fromisoformat(to_iso(now))
    assert store.control.heard(now + timedelta(seconds=1), postpone_s=0) == 0
    assert {d: device_row(store, ids[d])["deadline_at"] for d in ids} == after


def stop_by_dispatch_failure(store: Store, operation_id: str, command_id: str) -> None:
    store.commands.mark_dispatch_failed([(command_id, "no route")])


def stop_by_abort(store: Store, operation_id: str, command_id: str) -> None:
    store.control.abort(operation_id, "aborted: too many failures")


def stop_by_cancel(store: Store, operation_id: str, command_id: str) -> None:
    store.control.cancel(operation_id, "ops")


def stop_by_hide(store: Store, operation_id: str, command_id: str) -> None:
    store.devicecontrol.hide(DeviceControlFilters(bulk_operation_id=operation_id), "deleted by ops")


STOPS = [stop_by_dispatch_failure, stop_by_abort, stop_by_cancel, stop_by_hide]


@pytest.mark.parametrize("stop", STOPS, ids=lambda stop: stop.__name__)
@pytest.mark.parametrize("final", [DeviceStatus.SUCCESSFUL, DeviceStatus.FAILED])
def test_a_stop_never_rewrites_a_waiting_command_a_client_already_ended(
    store: Store, stop: Callable[[Store, str, str], None], final: DeviceStatus
) -> None:
    """The lifecycle table has no move out of a final status: a stop that reaches a command a client ended before it
    was published leaves its status and reason as they are."""
    operation_id = operation(store, ["a"])
    command_id = commands(store, operation_id)["a"]
    reason = "by hand" if final is DeviceStatus.FAILED else None
    store.commands.apply_statuses([("a", report(command_id, "a", final, reason))], from_devices=False)
    before = device_row(store, command_id)
    assert (before["status"], before["dispatch_state"]) == (final, "waiting")

    stop(store, operation_id, command_id)

    after = device_row(store, command_id)
    assert (after["status"], after["failure_reason"], after["finished_at"]) == (
        final,
        before["failure_reason"],
        before["finished_at"],
    )
    assert after["dispatch_state"] == "failed"  # out of the queue: the operation can end
    stats = store.operations.stats(operation_id)
    counted = stats.success_device_count, stats.failed_device_count + stats.dispatch_failed_count
    assert counted == ((1, 0) if final is DeviceStatus.SUCCESSFUL else (0, 1))


def test_a_deadline_passing_as_the_device_succeeds_leaves_it_successful(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline's candidates are read, then written: a command that ends in between keeps its final status."""
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(c, PAST) for c in ids.values()])
    read = control_module.fetch_rows

    def read_then_succeed(conn: Connection, sql: str, params: Any = ()) -> list[list[Any]]:
        rows = read(conn, sql, params)
        # Within the deadline's transaction, as a writer sharing its connection could.
        conn.execute("UPDATE device_operations SET status = 'SUCCESSFUL' WHERE command_id = ?", (ids["a"],))
        return rows

    monkeypatch.setattr(control_module, "fetch_rows", read_then_succeed)
    assert store.control.expire(100) == {operation_id}

    a, b = device_row(store, ids["a"]), device_row(store, ids["b"])
    assert (a["status"], a["failure_reason"], a["cancel_reason"]) == ("SUCCESSFUL", None, None)
    assert (b["status"], b["failure_reason"]) == ("FAILED", PAST.reason)
