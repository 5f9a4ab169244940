"""The scheduler over a real store thread and SQLite file: creation checks the query first, and resolving (now and
after a restart) happens on the store thread, never on the caller's."""

import asyncio
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from controller.query import QueryError
from controller.scheduler import NO_MATCH_REASON, Scheduler
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


def test_recovery_resolves_what_a_crash_left_created_or_resolving_and_wakes_the_dispatcher(
    store: Store, thread: StoreThread
) -> None:
    created = new_operation({"device_id": "a"}, store)
    resolving = new_operation({"all": True}, store)
    store.operations.transition(resolving, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
    unmatched = new_operation({"device_id": "nobody"}, store)
    wakes = Wakes()
    asyncio.run(Scheduler(thread, wakes).recover())
    assert store.operations.get(created).stats.resolved_device_count == 1
    assert store.operations.get(resolving).stats.resolved_device_count == 3
    assert store.operations.get(unmatched).reason == NO_MATCH_REASON
    assert [store.operations.get(o).state for o in (created, resolving, unmatched)] == [
        OperationState.RESOLVED,
        OperationState.RESOLVED,
        OperationState.FAILED,
    ]
    assert wakes.count == 1
