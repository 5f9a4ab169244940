"""Read paths of the store that replace scans (trigger-kept counts, query documents of few fields), and its writers."""

import contextlib
import random
import threading
import time
from pathlib import Path

import pytest

from controller.errors import Conflict, NotFound
from controller.store import Store
from controller.store.connection import Connection
from controller.store.database import Database
from controller.store.devicecontrol import DeviceControlFilters
from controller.store.operations import stats_from_counts
from controller.store.records import OperationStats
from shared.messages import Announcement, utc_now
from shared.operations import DeviceStatus, OperationType, Platform, PresenceState
from tests.controller.test_control import FUTURE, PAST, commands, operation, report


def recount(conn: Connection) -> dict[str, OperationStats]:
    """What the counts must be, by scanning every device row: the definition the triggers keep to."""
    rows = conn.execute(
        """SELECT operation_id, count(*) AS resolved,
                  count(*) FILTER (WHERE dispatch_state = 'dispatched') AS dispatched,
                  count(*) FILTER (WHERE dispatch_state = 'failed' AND status = 'FAILED') AS dispatch_failed,
                  count(*) FILTER (WHERE status = 'FAILED' AND dispatch_state != 'failed') AS failed,
                  count(*) FILTER (WHERE status = 'SUCCESSFUL') AS success,
                  count(*) FILTER (WHERE status = 'PENDING' AND dispatch_state = 'waiting') AS waiting,
                  count(*) FILTER (WHERE status = 'PENDING' AND dispatch_state != 'waiting') AS pending,
                  count(*) FILTER (WHERE status = 'EXECUTING') AS executing
           FROM device_operations GROUP BY operation_id"""
    )
    return {row["operation_id"]: stats_from_counts(row) for row in rows}  # the scan's columns are the table's


@pytest.mark.parametrize("seed", range(8))
def test_counts_follow_every_writer_through_a_random_history(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    operations = [operation(store, [f"d{n}" for n in range(rng.randint(1, 30))]) for _ in range(3)]
    for _ in range(60):
        operation_id = rng.choice(operations)
        ids = list(commands(store, operation_id).items())
        picked = rng.sample(ids, rng.randint(1, len(ids)))
        steps = ["dispatch", "dispatch_expired", "dispatch_failed", "status", "cancel", "expire", "put", "delete"]
        step = rng.choice(steps)
        if step == "dispatch":
            store.commands.mark_dispatched([(command_id, FUTURE) for _, command_id in picked])
        elif step == "dispatch_expired":
            store.commands.mark_dispatched([(command_id, PAST) for _, command_id in picked])
        elif step == "dispatch_failed":
            store.commands.mark_dispatch_failed([(command_id, "not supported") for _, command_id in picked])
        elif step == "status":
            status = rng.choice(list(DeviceStatus))
            reason = "boom" if status is DeviceStatus.FAILED else None
            store.commands.apply_statuses(
                [(device, report(command, device, status, reason)) for device, command in picked]
            )
        elif step == "cancel":
            with contextlib.suppress(Conflict):  # already cancelled: that writes nothing
                store.control.cancel(operation_id, "ops")
        elif step == "put":  # PUT /devicecontrol/operations/{id}
            _, command = picked[0]
            with contextlib.suppress(Conflict, NotFound):  # an illegal move, or a deleted one: nothing changes
                status = rng.choice(list(DeviceStatus))
                reason = "set by hand" if status is DeviceStatus.FAILED else None
                store.devicecontrol.set_status(store.devicecontrol.seq_of_command(command), status, reason)
        elif step == "delete":  # DELETE /devicecontrol/operations?deviceId=...
            store.devicecontrol.hide(DeviceControlFilters(device_id=picked[0][0]), "deleted by ops")
        else:
            store.control.expire(1000)
        assert store.operations.stats_of(operations) == recount(store.conn), step
        for status in (None, *DeviceStatus):
            listed = store.commands.list_for_operation(operation_id, status=status, limit=1, offset=0).total
            rows = "SELECT count(*) FROM device_operations WHERE operation_id = ? AND coalesce(?, status) = status"
            assert listed == store.conn.execute(rows, (operation_id, status)).fetchone()[0], (step, status)


def test_a_database_made_before_the_counts_gets_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path)
    first = operation(store, ["a", "b", "c"])
    ids = commands(store, first)
    store.commands.mark_dispatched([(ids["a"], FUTURE)])
    store.commands.apply_statuses([("a", report(ids["a"], "a", DeviceStatus.SUCCESSFUL))])
    store.conn.executescript(  # as Tether left it before it counted, and before its migrations were numbered
        "DROP TRIGGER count_updated_device; DROP TRIGGER count_deleted_device; DROP TABLE operation_counts; "
        "DROP TABLE schema_migrations;"
    )
    store.close()

    reopened = Store(path)
    try:
        assert reopened.operations.stats(first) == recount(reopened.conn)[first]
        assert (
            reopened.operations.stats(first).success_device_count,
            reopened.operations.stats(first).waiting_device_count,
        ) == (1, 2)
        reopened.commands.mark_dispatched([(ids["b"], FUTURE)])
        assert reopened.operations.stats(first).pending_device_count == 1
    finally:
        reopened.close()


def test_deleted_device_rows_leave_the_counts(store: Store) -> None:
    operation_id = operation(store, ["a", "b"])
    store.conn.execute("DELETE FROM device_operations WHERE device_id = 'a'")
    assert store.operations.stats(operation_id) == recount(store.conn)[operation_id]
    assert store.operations.stats(operation_id).resolved_device_count == 1


def test_counts_follow_statements_that_change_rows_of_several_operations_at_once(store: Store) -> None:
    """PostgreSQL counts once per statement, over all the rows it changed (SQLite once per row): each batched write
    here changes rows of three operations in one statement, in several ways at once."""
    devices = [f"d{n:02d}" for n in range(40)]
    operations = [operation(store, devices) for _ in range(3)]
    ids = [commands(store, operation_id) for operation_id in operations]
    every = [(device, by_device[device]) for by_device in ids for device in devices]

    def check() -> None:
        assert store.operations.stats_of(operations) == recount(store.conn)

    store.commands.mark_dispatch_failed([(command, "not supported") for _, command in every[::7]])
    store.commands.mark_dispatched([(command, FUTURE) for _, command in every])
    check()
    lifecycle = [DeviceStatus.PENDING, DeviceStatus.EXECUTING, DeviceStatus.SUCCESSFUL, DeviceStatus.FAILED]
    batch = [
        (device, report(command, device, status, "boom" if status is DeviceStatus.FAILED else None))
        for n, (device, command) in enumerate(every)
        for status in lifecycle[: 1 + n % 3] + lifecycle[3:] * (n % 5 == 0)
    ]
    store.commands.apply_statuses(batch)
    check()
    store.conn.execute("DELETE FROM device_operations WHERE device_id IN ('d00', 'd01', 'd05', 'd13')")
    check()
    assert [store.operations.stats(operation_id).resolved_device_count for operation_id in operations] == [36, 36, 36]


def test_query_documents_hold_only_the_fields_asked_for_in_their_json_types(store: Store) -> None:
    store.devices.record_announcement(
        Announcement(
            device_id="k1",
            platform=Platform.LINUX,
            agent_version="1.0",
            tags=["kiosk"],
            groups=["berlin"],
            inventory={"os": {"name": "Debian"}},
            time_zone="Europe/Berlin",
            announced_at=utc_now(),
        )
    )
    store.devices.record_presence("k2", PresenceState.ONLINE)  # known only by its presence: no announcement yet

    every = list(store.devices.query_documents(None, ["tags", "online", "inventory", "groups", "no-such-field"]))
    named = list(store.devices.query_documents(["k2", "unknown"], ["device_id"]))

    assert every == [
        (
            "k1",
            "Europe/Berlin",
            {"groups": ["berlin"], "inventory": {"os": {"name": "Debian"}}, "online": False, "tags": ["kiosk"]},
        ),
        ("k2", None, {"groups": [], "inventory": {}, "online": True, "tags": []}),
    ]
    assert named == [("k2", None, {"device_id": "k2"})]


def test_query_documents_page_through_the_fleet_in_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.store.devices.QUERY_PAGE", 3)
    store.devices.record_presences([(f"d{n:02d}", PresenceState.ONLINE) for n in range(10)])

    every = [device_id for device_id, _, _ in store.devices.query_documents(None, ["online"])]
    named = [device_id for device_id, _, _ in store.devices.query_documents(["d09", "d01", "d05", "d04", "zz"], [])]

    assert every == [f"d{n:02d}" for n in range(10)]
    assert named == ["d01", "d04", "d05", "d09"]


def test_a_batch_of_announcements_and_presences_applies_in_order(store: Store) -> None:
    def announced(version: str) -> Announcement:
        return Announcement(device_id="a", platform=Platform.LINUX, agent_version=version, announced_at=utc_now())

    store.devices.record_announcements([announced("1.0"), announced("2.0")])
    store.devices.record_presences(
        [("a", PresenceState.ONLINE), ("a", PresenceState.OFFLINE), ("b", PresenceState.ONLINE)]
    )

    assert store.devices.get("a").agent_version == "2.0"
    assert not store.devices.get("a").online
    assert store.devices.get("b").online


def test_unable_to_run_names_the_announced_devices_without_the_capability(store: Store) -> None:
    def announce(device_id: str, platform: Platform, capabilities: list[OperationType]) -> None:
        store.devices.record_announcement(
            Announcement(
                device_id=device_id,
                platform=platform,
                agent_version="1.0",
                capabilities=capabilities,
                announced_at=utc_now(),
            )
        )

    announce("kiosk", Platform.LINUX, [OperationType.LOCK, OperationType.REBOOT])
    announce("phone", Platform.ANDROID, [OperationType.REBOOT])
    announce("bare", Platform.LINUX, [])
    store.devices.record_presence("silent", PresenceState.ONLINE)  # never announced: nothing known, so not refused

    named = ["kiosk", "phone", "bare", "silent", "unknown"]
    assert store.devices.unable_to_run(named, "LOCK") == {"phone": "android", "bare": "linux"}
    assert store.devices.unable_to_run(named, "REBOOT") == {"bare": "linux"}
    assert store.devices.unable_to_run([], "LOCK") == {}


def test_a_writer_waiting_on_the_shared_lock_starts_the_moment_the_other_commits(database: Database) -> None:
    """Two connections of one process (the main loop's and the API's): SQLite's busy handler alone would have the
    waiting one sleep up to 100 ms past the other's commit."""
    first, second = Store(database), Store(database)
    holding, committed_at, started_at = threading.Event(), [0.0], [0.0]

    def hold() -> None:
        with first.transaction():
            holding.set()
            time.sleep(0.25)
            committed_at[0] = time.monotonic()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    with second.transaction() as conn:
        started_at[0] = time.monotonic()
        conn.execute(
            "INSERT INTO api_keys (id, name, role, key_hash, created_at) VALUES ('k', 'n', 'read', 'h', 'now')"
        )
    holder.join()
    first.close()
    second.close()

    assert 0 <= started_at[0] - committed_at[0] < 0.04
