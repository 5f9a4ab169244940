"""The cancellations awaited from devices, in a real store on each engine, through the paths that feed them: the
supervisor's publishing, ingest of statuses and presences, and a broker that lost state."""

from datetime import UTC, datetime, timedelta

from controller.clock import to_iso
from controller.ingest import store_received
from controller.store import Store
from controller.store.cancellations import RETRY_FIRST_S, RETRY_MAX_S
from shared.operations import DeviceStatus, PresenceState
from tests.controller.test_control import FUTURE, PAST, commands, device_row, operation, report


def publish_pending(store: Store) -> list[str]:
    """What the supervisor does each tick: publish every pending cancellation and record it sent; the devices."""
    orders = store.control.pending_cancellations(100)
    store.control.mark_cancellations_sent(orders)
    return sorted(order.device_id for order in orders)


def come_online(store: Store, *device_ids: str) -> None:
    store_received(store, [], [], [(device_id, PresenceState.ONLINE) for device_id in device_ids])


def cancelled_on(store: Store, devices: list[str]) -> dict[str, str]:
    """An operation whose devices hold their command (queued), cancelled and published; its command ids by device."""
    operation_id = operation(store, devices)
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(c, FUTURE) for c in ids.values()])
    store.commands.apply_statuses([(d, report(c, d, DeviceStatus.PENDING)) for d, c in ids.items()])
    store.control.cancel(operation_id, "alice")
    assert publish_pending(store) == sorted(devices)
    return ids


def test_a_published_cancellation_is_awaited_until_its_device_sends_a_final_status(store: Store) -> None:
    ids = cancelled_on(store, ["a", "b", "c"])
    assert store.cancellations.awaited() == sorted(ids.values())

    final = report(ids["a"], "a", DeviceStatus.FAILED, "cancelled by alice")
    forged = report(ids["b"], "c", DeviceStatus.FAILED, "cancelled by alice")  # c cannot confirm b's
    store_received(store, [("a", final), ("c", forged)], [], [])

    assert store.cancellations.awaited() == sorted([ids["b"], ids["c"]])
    assert device_row(store, ids["a"])["status"] == "FAILED"


def test_a_late_final_status_refused_by_the_ledger_still_confirms_the_cancellation(store: Store) -> None:
    operation_id = operation(store, ["a"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(ids["a"], FUTURE)])
    store.control.cancel(operation_id, "alice")  # not acknowledged: it ends FAILED here, and the device is told
    publish_pending(store)
    assert store.cancellations.awaited() == [ids["a"]]

    outcome, _ = store_received(store, [("a", report(ids["a"], "a", DeviceStatus.SUCCESSFUL))], [], [])

    assert outcome.rejected == [(ids["a"], "already FAILED; the first final status stands")]
    assert store.cancellations.awaited() == []


def test_a_cancellation_for_a_command_past_its_deadline_is_not_awaited(store: Store) -> None:
    operation_id = operation(store, ["a"])
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(ids["a"], PAST)])
    store.control.expire(100)  # a command not started by its deadline is refused by its agent too

    assert publish_pending(store) == ["a"]
    assert store.cancellations.awaited() == []


def test_an_unconfirmed_cancellation_goes_out_again_when_its_device_comes_online(store: Store) -> None:
    cancelled_on(store, ["a", "b"])
    now = datetime.now(UTC)
    assert store.cancellations.requeue_due(now + timedelta(seconds=RETRY_FIRST_S + 1)) == 0  # both offline: they wait

    come_online(store, "a")

    assert store.cancellations.requeue_due(now) == 0  # it has not subscribed yet
    assert store.cancellations.requeue_due(now + timedelta(seconds=2)) == 1
    assert publish_pending(store) == ["a"]
    assert store.cancellations.requeue_due(now + timedelta(seconds=2)) == 0  # published: not due again yet
    parked = store.conn.execute("SELECT next_at = until FROM unconfirmed_cancellations WHERE device_id = 'b'")
    assert parked.fetchone()[0] == 1  # b's waits for b, off the due index a tick reads


def test_a_silent_online_device_is_sent_its_cancellation_again_less_and_less_often(store: Store) -> None:
    cancelled_on(store, ["a"])
    come_online(store, "a")
    publish_pending(store)  # a later presence made it due: nothing was pending
    now = datetime.now(UTC)
    first = now + timedelta(seconds=RETRY_FIRST_S + 1)

    assert store.cancellations.requeue_due(first) == 1
    assert publish_pending(store) == ["a"]
    assert store.cancellations.requeue_due(first) == 0
    assert store.cancellations.requeue_due(now + timedelta(seconds=2 * RETRY_FIRST_S + 1)) == 1


def test_a_broker_that_lost_state_has_every_unconfirmed_cancellation_of_online_devices_sent_again(
    store: Store,
) -> None:
    cancelled_on(store, ["a", "b", "c"])
    store.devices.record_presences([("a", PresenceState.ONLINE), ("b", PresenceState.ONLINE)])
    now = datetime.now(UTC)

    store.cancellations.send_again_to_all(now)

    assert store.cancellations.requeue_due(now) == 2
    assert publish_pending(store) == ["a", "b"]


def test_an_awaited_cancellation_is_forgotten_once_its_command_deadline_has_passed(store: Store) -> None:
    ids = cancelled_on(store, ["a"])
    come_online(store, "a")

    assert store.cancellations.requeue_due(datetime.fromisoformat(FUTURE.at) + timedelta(seconds=1)) == 0
    assert store.cancellations.awaited() == []
    assert device_row(store, ids["a"])["cancel_sent"] == 1


def test_a_command_being_cancelled_is_not_published_again_after_a_broker_loss(store: Store) -> None:
    cancelled = cancelled_on(store, ["a"])
    kept = operation(store, ["b"])
    store.commands.mark_dispatched([(c, FUTURE) for c in commands(store, kept).values()])

    outstanding = {command.target.command_id for command in store.commands.outstanding(100)}

    assert outstanding == set(commands(store, kept).values())
    assert cancelled["a"] not in outstanding


def test_each_copy_waits_twice_as_long_as_the_last_up_to_an_hour(store: Store) -> None:
    ids = cancelled_on(store, ["a"])  # published once: the next copy in RETRY_FIRST_S
    now = datetime.now(UTC)
    waits = []
    for _ in range(9):
        with store.transaction() as conn:
            store.cancellations.watch(conn, [ids["a"]], to_iso(now))
        next_at = store.conn.execute("SELECT next_at FROM unconfirmed_cancellations").fetchone()[0]
        waits.append((datetime.fromisoformat(next_at) - datetime.fromisoformat(to_iso(now))).total_seconds())
    assert waits == [2 * RETRY_FIRST_S, 120, 240, 480, 960, 1920, RETRY_MAX_S, RETRY_MAX_S, RETRY_MAX_S]
