"""Writes on a database with no room left: a real SQLITE_FULL, from SQLite's own page limit (the e2e test in
tests/e2e/attacks/test_disk_full.py fills a real file system); and transactions inside others, on both engines."""

import errno
import logging
import sqlite3
from pathlib import Path

import pytest

from controller.errors import StorageFull
from controller.store import Store
from controller.store.space import is_full, unopenable
from shared.operations import OperationType, ScheduleType

BIG = "x" * 200_000
"""An argument that takes many new pages."""

SQLITE_PAGE_LIMIT = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
"""PostgreSQL has no size limit of its own to reach: only filling its server's file system would make it full."""


def create(store: Store, script: str = "true") -> str:
    return store.operations.create(
        operation_type=OperationType.RUN_SHELL_SCRIPT,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query={"all": True},
        arguments={"script": script},
        created_by="ops",
        timeout_s=600,
        delivery_timeout_s=60,
    )


def no_room(store: Store) -> None:
    """Let the database grow no further: a write that needs a new page fails with SQLITE_FULL."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")


def room(store: Store) -> None:
    store.conn.execute("PRAGMA max_page_count = 1073741823")


def stored(store: Store) -> int:
    return store.operations.page(limit=1, offset=0).total


@SQLITE_PAGE_LIMIT
def test_a_write_with_no_room_raises_storage_full_and_stores_nothing(store: Store) -> None:
    no_room(store)
    with pytest.raises(StorageFull, match="disk is full"):
        create(store, BIG)
    assert stored(store) == 0
    assert not store.conn.in_transaction
    room(store)
    create(store)
    assert stored(store) == 1


@SQLITE_PAGE_LIMIT
def test_the_disk_counts_as_full_from_a_failed_write_until_one_stores_something_logged_once_each_way(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "controller.store.space")
    assert store.space.problem() is None
    no_room(store)
    for _ in range(3):
        with pytest.raises(StorageFull):
            create(store, BIG)
    problem = store.space.problem()
    assert problem is not None
    assert "disk full" in problem
    with store.transaction():
        pass  # stores nothing: proves nothing about the room left
    assert store.space.problem() is not None
    room(store)
    create(store)
    assert store.space.problem() is None
    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(" under ")[0] for message in messages] == ["disk is full", "disk space is back"]


def create_then_fail(store: Store) -> None:
    with store.transaction():
        create(store)
        raise RuntimeError("undo this one")


def create_two(store: Store, second_script: str) -> None:
    with store.transaction():
        create(store)
        create(store, second_script)


def test_a_transaction_inside_another_undoes_only_its_own_writes_when_it_fails(store: Store) -> None:
    with store.transaction():
        kept = create(store)
        with pytest.raises(RuntimeError):
            create_then_fail(store)
    assert [record.id for record in store.operations.page(limit=10, offset=0).items] == [kept]


@SQLITE_PAGE_LIMIT
def test_no_room_inside_a_nested_transaction_stores_nothing_of_the_outer_one(store: Store) -> None:
    no_room(store)
    with pytest.raises(StorageFull):
        create_two(store, BIG)
    assert stored(store) == 0
    assert not store.conn.in_transaction


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (sqlite3.OperationalError("database is locked"), False),
        (ValueError("no"), False),
    ],
)
def test_which_errors_mean_no_room(error: BaseException, full: bool) -> None:
    assert is_full(error) is full


def test_what_waits_for_the_commit_happens_once_stored_and_never_when_undone(store: Store) -> None:
    done: list[str] = []
    with store.transaction():
        store.on_commit(lambda: done.append("stored"))
        with pytest.raises(RuntimeError):
            log_then_fail(store, done)
        assert done == []
    store.on_commit(lambda: done.append("outside a transaction"))
    with pytest.raises(RuntimeError):
        log_then_fail(store, done)
    assert done == ["stored", "outside a transaction"]


@SQLITE_PAGE_LIMIT
def test_nothing_waiting_for_the_commit_happens_when_the_disk_has_no_room_for_it(store: Store) -> None:
    done: list[str] = []
    no_room(store)
    with pytest.raises(StorageFull):
        log_then_create(store, done, BIG)
    assert done == []


def log_then_fail(store: Store, done: list[str]) -> None:
    with store.transaction():
        store.on_commit(lambda: done.append("undone"))
        raise RuntimeError("undo this one")


def log_then_create(store: Store, done: list[str], script: str) -> None:
    with store.transaction():
        store.on_commit(lambda: done.append("never stored"))
        create(store, script)


def test_a_database_that_cannot_be_opened_is_named_and_a_full_disk_blamed_only_when_it_is_full(tmp_path: Path) -> None:
    database = tmp_path / "tether.db"
    not_a_database = sqlite3.DatabaseError("file is not a database")
    assert unopenable(database, not_a_database) == f"cannot open the database {database}: file is not a database"
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert unopenable(database, full).endswith("; its disk is full: free some space and start again")
