"""Operation events read off a real store, on each engine: every activity entry once and in order, counts only
on change."""

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from controller.api.event_stream import _unseen
from controller.completion import finish_if_done
from controller.errors import NotFound
from controller.events import MAX_QUEUED, OperationEvents, _event, snapshot
from controller.store import Store
from controller.store.records import ActivityEntry, OperationStats
from shared.events import OperationEvent, OperationEventKind
from shared.operations import DeviceStatus, OperationState, PresenceState
from shared.topics import Topics
from tests.controller.test_control import FUTURE, commands, operation, report


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def __call__(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self.messages.extend(messages)


def tick(events: OperationEvents) -> list[OperationEvent]:
    return asyncio.run(events.tick())


def kinds(events: list[OperationEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.state, e.activity.operation_state if e.activity else None) for e in events]


def test_every_activity_entry_becomes_one_event_with_the_state_it_led_to(store: Store) -> None:
    events = OperationEvents(store, Topics(), publish=None)
    operation_id = operation(store, ["a", "b"])

    sent = tick(events)

    assert kinds(sent) == [
        ("activity", "CREATED", "CREATED"),
        ("activity", "RESOLVED", "QUERY RESOLVED"),
        ("activity", "DISPATCHING", "DISPATCHING"),
    ]
    assert {e.operation_id for e in sent} == {operation_id}
    assert [e.activity.seq for e in sent if e.activity] == sorted(e.activity.seq for e in sent if e.activity)
    assert all(e.devices.waiting == 2 for e in sent)  # the counts as they are now, with every event
    assert tick(events) == []  # nothing changed since


def test_counts_are_sent_when_they_change_and_the_last_event_is_the_end(store: Store) -> None:
    events = OperationEvents(store, Topics(), publish=None)
    operation_id = operation(store, ["a", "b"])
    ids = commands(store, operation_id)
    tick(events)

    store.commands.mark_dispatched([(ids["a"], FUTURE), (ids["b"], FUTURE)])
    (dispatched,) = tick(events)
    assert dispatched.event is OperationEventKind.STATS
    assert dispatched.devices.model_dump() == {"waiting": 0, "pending": 2, "executing": 0, "successful": 0, "failed": 0}
    assert dispatched.operation_stats.device_operation_statuses_count.dispatched_device_count == 2

    store.commands.apply_statuses([("a", report(ids["a"], "a", DeviceStatus.EXECUTING))])
    store.commands.apply_statuses([("b", report(ids["b"], "b", DeviceStatus.FAILED, "boom"))])
    (progress,) = tick(events)
    assert progress.devices.model_dump() == {"waiting": 0, "pending": 0, "executing": 1, "successful": 0, "failed": 1}

    store.commands.apply_statuses([("a", report(ids["a"], "a", DeviceStatus.SUCCESSFUL))])
    assert finish_if_done(store, operation_id)
    (end,) = tick(events)
    assert (end.event, end.state, end.activity and end.activity.operation_state) == ("activity", "COMPLETED", "FAILURE")
    assert end.reason == "1 succeeded, 1 failed of 2 device(s)"
    assert end.ended
    assert end.devices.successful == 1
    store.devices.record_presence("a", PresenceState.OFFLINE)
    assert tick(events) == []  # an ended operation sends nothing more


def test_events_start_from_now_and_the_snapshot_shows_the_operation_as_it_stands(store: Store) -> None:
    old = operation(store, ["a"])
    events = OperationEvents(store, Topics(), publish=None)
    assert [e.operation_id for e in tick(events) if e.event is OperationEventKind.ACTIVITY] == []

    now = snapshot(store, old)
    assert (now.event, now.state, now.devices.waiting) == ("snapshot", "DISPATCHING", 1)
    assert now.activity is not None
    assert now.activity.operation_state == "DISPATCHING"
    with pytest.raises(NotFound):
        snapshot(store, "no-such-operation")


def test_events_go_to_the_operations_streams_and_topic(store: Store) -> None:
    published = Published()
    events = OperationEvents(store, Topics("site/a"), publish=published)
    first = operation(store, ["a"])

    async def scenario() -> None:
        watching, other = events.subscribe(first), events.subscribe("another")

        sent = await events.tick()
        await asyncio.sleep(0)  # delivered through the subscriber's loop

        assert [watching.queue.get_nowait() for _ in range(watching.queue.qsize())] == sent
        assert other.queue.empty()
        assert [topic for topic, _ in published.messages] == [f"site/a/operations/{first}/events"] * len(sent)
        assert [OperationEvent.model_validate_json(payload) for _, payload in published.messages] == sent

        events.unsubscribe(watching)
        store.operations.transition(first, OperationState.FAILED, activity="FAILURE", reason="stopped")
        await events.tick()
        await asyncio.sleep(0)
        assert watching.queue.empty()

        events.close()
        await asyncio.sleep(0)
        assert other.queue.get_nowait() is None

    asyncio.run(scenario())


def test_a_stream_on_another_threads_loop_gets_its_events_there(store: Store) -> None:
    events = OperationEvents(store, Topics(), publish=None)
    first = operation(store, ["a"])
    subscribed = threading.Event()
    received: list[OperationEvent | None] = []

    async def stream() -> None:
        subscription = events.subscribe(first)
        subscribed.set()
        while (event := await subscription.queue.get()) is not None:
            received.append(event)
        received.append(None)

    reader = threading.Thread(target=lambda: asyncio.run(stream()))
    reader.start()
    assert subscribed.wait(5)
    sent = tick(events)
    events.close()
    reader.join(5)

    assert sent
    assert received == [*sent, None]


def test_a_stream_that_falls_too_far_behind_is_dropped_and_gets_no_more(store: Store) -> None:
    events = OperationEvents(store, Topics(), publish=None)
    first = operation(store, ["a"])

    async def scenario() -> None:
        stalled = events.subscribe(first)
        event = snapshot(store, first)
        for _ in range(MAX_QUEUED):
            stalled.offer(event)
        assert not stalled.dropped.is_set()
        stalled.offer(event)
        assert stalled.dropped.is_set()
        stalled.queue.get_nowait()
        stalled.offer(event)
        assert stalled.queue.qsize() == MAX_QUEUED - 1  # dropped: nothing more is queued

    asyncio.run(scenario())


def test_events_see_writes_made_through_another_connection(store: Store) -> None:
    events = OperationEvents(store, Topics(), publish=None)
    tick(events)
    api_store = Store(store.database)  # the REST API's connection
    try:
        created = operation(api_store, ["a"])
    finally:
        api_store.close()
    assert created in {e.operation_id for e in tick(events)}


def stream_event(
    kind: OperationEventKind, state: OperationState, seq: int | None, executing: int, at_offset_s: float
) -> OperationEvent:
    entry = None if seq is None else ActivityEntry(seq, "PROCESSING", "2026-12-02T10:00:00.000Z", None)
    stats = OperationStats(resolved_device_count=2, dispatched_device_count=2, unfinished_device_count=2)
    stats = dataclasses.replace(stats, pending_device_count=2 - executing, executing_device_count=executing)
    event = _event("op", kind, state, None, stats, entry)
    return event.model_copy(update={"at": event.at + timedelta(seconds=at_offset_s)})


def test_a_stream_shows_newer_counts_that_came_with_activity_its_snapshot_already_has() -> None:
    """The hub may read activity entries the snapshot includes together with counts newer than the snapshot's
    (ingest writes on another thread): dropping them whole lost the devices' EXECUTING from the stream."""
    first = stream_event(OperationEventKind.SNAPSHOT, OperationState.DISPATCHING, 5, executing=0, at_offset_s=0)
    covered = stream_event(OperationEventKind.ACTIVITY, OperationState.RESOLVED, 3, executing=2, at_offset_s=0.1)

    shown = _unseen(covered, first, first)
    assert shown is not None
    assert (shown.event, shown.state, shown.activity) == (OperationEventKind.STATS, OperationState.DISPATCHING, None)
    assert shown.devices.executing == 2
    assert _unseen(covered, first, shown) is None  # the same counts again: nothing new
    read_before = stream_event(OperationEventKind.STATS, OperationState.DISPATCHING, None, 2, at_offset_s=-0.1)
    assert _unseen(read_before, first, first) is None
    newer = stream_event(OperationEventKind.ACTIVITY, OperationState.COMPLETED, 6, executing=0, at_offset_s=0.2)
    assert _unseen(newer, first, shown) == newer
