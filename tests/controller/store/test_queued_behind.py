"""`queued_behind` in an operation's device listing: the earlier operation a device runs first, in a real store."""

from controller.store import Store
from shared.operations import DeviceStatus
from tests.controller.test_control import FUTURE, commands, operation, report


def dispatched(store: Store, devices: list[str]) -> tuple[str, dict[str, str]]:
    operation_id = operation(store, devices)
    ids = commands(store, operation_id)
    store.commands.mark_dispatched([(command_id, FUTURE) for command_id in ids.values()])
    return operation_id, ids


def queued(store: Store, operation_id: str) -> dict[str, str | None]:
    page = store.commands.list_for_operation(operation_id, status=None, limit=100, offset=0)
    return {record.device_id: record.queued_behind for record in page.items}


def test_a_pending_command_is_queued_behind_the_device_s_earliest_unfinished_one(store: Store) -> None:
    first, first_ids = dispatched(store, ["a", "b", "c"])
    store.commands.apply_statuses([("a", report(first_ids["a"], "a", DeviceStatus.EXECUTING))])
    store.commands.apply_statuses([("b", report(first_ids["b"], "b", DeviceStatus.SUCCESSFUL))])
    second, _ = dispatched(store, ["a", "b", "c", "d"])
    third, _ = dispatched(store, ["a"])

    assert queued(store, first) == {"a": None, "b": None, "c": None}  # nothing before them
    # a runs the first operation; b finished it; c has not started it (still PENDING): it comes first all the same.
    assert queued(store, second) == {"a": first, "b": None, "c": first, "d": None}
    assert queued(store, third) == {"a": first}  # the earliest unfinished, not the one just before


def test_only_a_command_the_device_has_and_has_not_started_is_queued(store: Store) -> None:
    first, first_ids = dispatched(store, ["a", "b"])
    store.commands.apply_statuses([("a", report(first_ids["a"], "a", DeviceStatus.EXECUTING))])
    store.commands.apply_statuses([("b", report(first_ids["b"], "b", DeviceStatus.EXECUTING))])
    second = operation(store, ["a", "b"])  # resolved, not dispatched: waiting, not queued
    assert queued(store, second) == {"a": None, "b": None}

    ids = commands(store, second)
    store.commands.mark_dispatched([(command_id, FUTURE) for command_id in ids.values()])
    store.commands.apply_statuses([("b", report(ids["b"], "b", DeviceStatus.EXECUTING))])  # b went on to it
    assert queued(store, second) == {"a": first, "b": None}
    store.commands.apply_statuses([("a", report(first_ids["a"], "a", DeviceStatus.FAILED, "boom"))])
    assert queued(store, second) == {"a": None, "b": None}
