"""The scheduler over a real store thread and SQLite file: creation checks the query first, and resolving (now and
after a restart) happens on the store thread, never on the caller's."""

import asyncio
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from controller import scheduler
from controller.query import QueryError
from controller.scheduler import NO_MATCH_REASON, Resolver, Scheduler, resolve_waiting
from controller.store import Store
from controller.store.database import Database
from controller.store.records import OperationRecord
from controller.store_thread import StoreThread
from shared.messages import Announcement, utc_now
from shared.operations import ActivityState, OperationState, OperationType, Platform, ScheduleType


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """On the test's database, which the store thread shares, as the controller's stores do."""
    opened = Store(database)
    opened.devices.record_announcements(
        [
            Announcement(device_id=device_id, platform=Platform.LINUX, agent_version="0.1.0", announced_at=utc_now())
            for device_id in ("a", "b", "c")
        ]
    )
    yield opened
    opened.close()


@pytest.fixture
def thread(database: Database, store: Store) -> Iterator[StoreThread]:
    worker = StoreThread(database)
    yield worker
    worker.close()


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def new_operation(device_query: dict[str, Any], store: Store) -> str:
    return store.operations.create(
        operation_type=OperationType.LOCK,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query=device_query,
        arguments={},
        created_by="ops",
        timeout_s=60,
        delivery_timeout_s=60,
    )


def operation_of(store: Store, operation_id: str) -> OperationRecord:
    return store.operations.get(operation_id)


def test_an_operation_is_stored_and_resolved_on_the_store_thread(store: Store, thread: StoreThread) -> None:
    wakes = Wakes()
    ran_on: list[str] = []

    def store_operation(worker_store: Store) -> str:
        ran_on.append(threading.current_thread().name)
        return new_operation({"device_id": {"$in": ["a", "c"]}}, worker_store)

    def answer(worker_store: Store, operation_id: str) -> OperationRecord:
        ran_on.append(threading.current_thread().name)
        assert worker_store.conn.in_transaction  # read before the dispatcher can see, let alone move, the operation
        return worker_store.operations.get(operation_id)

    created = asyncio.run(Scheduler(thread, wakes).create({"device_id": {"$in": ["a", "c"]}}, store_operation, answer))
    assert [name.split("_")[0] for name in ran_on] == ["tether-store", "tether-store"], ran_on
    assert created.state is OperationState.RESOLVED
    assert created.stats.resolved_device_count == 2
    assert store.operations.get(created.id) == created
    assert wakes.count == 0  # the caller wakes the dispatcher once it has read what it answers with


def test_an_invalid_query_stores_nothing(store: Store, thread: StoreThread) -> None:
    query = {"device_id": {"$in": "a"}}
    with pytest.raises(QueryError) as caught:
        asyncio.run(Scheduler(thread, Wakes()).create(query, partial(new_operation, query), operation_of))
    assert caught.value.field == "operation_device_query.device_id.$in"
    assert store.operations.page(limit=10, offset=0).total == 0


def test_recovery_resolves_what_a_crash_left_created_or_resolving(store: Store) -> None:
    created = new_operation({"device_id": "a"}, store)
    resolving = new_operation({"all": True}, store)
    store.operations.transition(resolving, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
    unmatched = new_operation({"device_id": "nobody"}, store)
    assert resolve_waiting(store) == 3
    assert store.operations.get(created).stats.resolved_device_count == 1
    assert store.operations.get(resolving).stats.resolved_device_count == 3
    assert store.operations.get(unmatched).reason == NO_MATCH_REASON
    assert [store.operations.get(o).state for o in (created, resolving, unmatched)] == [
        OperationState.RESOLVED,
        OperationState.RESOLVED,
        OperationState.FAILED,
    ]
    assert resolve_waiting(store) == 0


def test_a_large_query_is_answered_created_and_resolved_by_the_leaders_resolver(
    store: Store, thread: StoreThread, database: Database
) -> None:
    """Above `large_query` devices, the POST is answered as soon as the operation is stored; the resolver, woken
    through the dispatcher's wake, resolves it on its own thread and then wakes the dispatcher."""
    wakes = Wakes()
    query = {"all": True}
    created = asyncio.run(
        Scheduler(thread, wakes, large_query=2).create(query, partial(new_operation, query), operation_of)
    )
    assert created.state is OperationState.CREATED
    assert created.stats.resolved_device_count == 0
    assert [entry.operation_state for entry in created.activity] == ["CREATED"]
    resolving = StoreThread(database)

    async def resolve() -> None:
        dispatcher_woken = asyncio.Event()
        running = asyncio.create_task(Resolver(resolving, dispatcher_woken.set).run())
        await dispatcher_woken.wait()
        running.cancel()

    try:
        asyncio.run(asyncio.wait_for(resolve(), 10))
    finally:
        resolving.close()
    operation = store.operations.get(created.id)
    assert operation.state is OperationState.RESOLVED
    assert operation.stats.resolved_device_count == 3
    assert [entry.operation_state for entry in operation.activity] == ["CREATED", "QUERY INITIATED", "QUERY RESOLVED"]
    # At the limit, the query is small: resolved before the answer, as every smaller one.
    query = {"device_id": {"$in": ["a", "b"]}}
    small = asyncio.run(
        Scheduler(thread, wakes, large_query=2).create(query, partial(new_operation, query), operation_of)
    )
    assert small.state is OperationState.RESOLVED


def test_an_operation_another_process_resolved_meanwhile_is_not_resolved_again(
    store: Store, database: Database
) -> None:
    """Two replicas' resolvers on one operation (a leader that lost the lead still finishing, its successor's
    recovery): whichever writes second finds it RESOLVED and writes nothing."""
    operation_id = new_operation({"all": True}, store)
    other = Store(database)
    try:
        first_read = threading.Event()
        second_done = threading.Event()
        reads = other.devices.query_documents

        def slow_read(*args: Any) -> Any:
            """The other process reads the fleet, and this one resolves the operation before it writes."""
            first_read.set()
            assert second_done.wait(10)
            return reads(*args)

        other.devices.query_documents = slow_read  # type: ignore[method-assign]
        outcome: list[int] = []
        racing = threading.Thread(target=lambda: outcome.append(resolve_waiting(other)))
        racing.start()
        assert first_read.wait(10)
        assert resolve_waiting(store) == 1
        second_done.set()
        racing.join(10)
    finally:
        other.close()
    assert outcome == [1]  # it found the operation waiting, and returned without an error
    operation = store.operations.get(operation_id)
    assert operation.state is OperationState.RESOLVED
    assert operation.stats.resolved_device_count == 3
    assert [entry.operation_state for entry in operation.activity].count("QUERY RESOLVED") == 1
    assert store.conn.execute("SELECT count(*) FROM device_operations").fetchone()[0] == 3


def test_an_operation_whose_stored_query_cannot_be_resolved_fails_with_the_reason_and_the_rest_resolve(
    store: Store,
) -> None:
    """A query stored by an older version that this one refuses: one FAILED operation, not a controller that fails
    on every start."""
    unreadable = new_operation({"device_id": {"$in": "a"}}, store)
    fine = new_operation({"device_id": "b"}, store)
    assert resolve_waiting(store) == 2
    failed = store.operations.get(unreadable)
    assert failed.state is OperationState.FAILED
    assert failed.reason is not None
    assert failed.reason.startswith("could not be resolved: operation_device_query.device_id.$in")
    assert store.operations.get(fine).state is OperationState.RESOLVED
    assert resolve_waiting(store) == 0


def test_a_resolution_a_crash_cut_short_adds_only_the_targets_the_first_had_not_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large resolution commits its commands in chunks: after a crash between two, the next one adds the rest,
    and every count matches the rows."""
    monkeypatch.setattr(scheduler, "RESOLVE_CHUNK", 2)
    operation_id = new_operation({"all": True}, store)
    store.operations.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
    assert store.commands.add_targets(operation_id, ["a"]) == 1  # the chunk written before the crash
    first = store.conn.execute("SELECT command_id FROM device_operations WHERE device_id = 'a'").fetchone()[0]
    assert resolve_waiting(store) == 1
    operation = store.operations.get(operation_id)
    assert operation.state is OperationState.RESOLVED
    assert operation.stats.resolved_device_count == 3
    rows = store.conn.execute(
        "SELECT device_id, command_id FROM device_operations WHERE operation_id = ? ORDER BY device_id",
        (operation_id,),
    ).fetchall()
    assert [row[0] for row in rows] == ["a", "b", "c"]
    assert rows[0][1] == first  # kept: the one it had, not a second
    assert [entry.operation_state for entry in operation.activity].count("QUERY RESOLVED") == 1


def test_a_resolution_stops_between_chunks_once_its_operation_no_longer_resolves(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled (or resolved elsewhere) while its chunks are written: no chunk after that one, no RESOLVED."""
    monkeypatch.setattr(scheduler, "RESOLVE_CHUNK", 1)
    operation_id = new_operation({"all": True}, store)
    add_targets = store.commands.add_targets

    def cancelled_after_first(operation: str, device_ids: Any, **plans: Any) -> int:
        added = add_targets(operation, device_ids, **plans)
        if store.operations.state(operation) is OperationState.RESOLVING:
            store.operations.transition(operation, OperationState.FAILED, reason="cancelled by ops")
        return added

    monkeypatch.setattr(store.commands, "add_targets", cancelled_after_first)
    assert resolve_waiting(store) == 1
    operation = store.operations.get(operation_id)
    assert operation.state is OperationState.FAILED
    assert operation.reason == "cancelled by ops"
    assert store.conn.execute("SELECT count(*) FROM device_operations").fetchone()[0] == 1
