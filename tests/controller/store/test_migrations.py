"""Numbered migrations: applied once and recorded, each whole or not at all, never by two processes, never down."""

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from controller.errors import StartupError
from controller.store import Store, migrations
from controller.store.connection import connect, open_database
from controller.store.migrations import LATEST, Migration, statements, status, upgrade

SHIPPED = list(range(1, LATEST + 1))
NEXT = LATEST + 1
TABLES = {"api_keys", "devices", "operations", "device_operations", "operation_counts", "schema_migrations"}


def recorded(path: Path) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return [tuple(row) for row in conn.execute("SELECT number, applied_at FROM schema_migrations ORDER BY number")]


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A migration NEXT that this code does not ship, recording each time it runs; and what it ran."""
    ran: list[str] = []

    def add_notes(conn: sqlite3.Connection) -> None:
        ran.append(threading.current_thread().name)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, Migration(NEXT, "notes", add_notes)))
    monkeypatch.setattr(migrations, "LATEST", NEXT)
    return ran


def test_a_new_database_is_made_at_the_newest_schema_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    Store(path).close()
    assert tables(path) >= TABLES
    assert [number for number, _ in recorded(path)] == list(range(1, LATEST + 1))
    with closing(sqlite3.connect(path)) as conn:
        assert status(conn).applied == LATEST
        assert status(conn).pending == ()


def test_opening_again_applies_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    Store(path).close()
    first = recorded(path)
    for _ in range(3):
        Store(path).close()
    assert recorded(path) == first


def test_a_pending_migration_is_applied_once_on_the_next_open(tmp_path: Path, later: list[str]) -> None:
    path = tmp_path / "tether.db"
    with closing(open_database(str(path))) as conn:
        assert [m.number for m in upgrade(conn, where=str(path))] == [*SHIPPED, NEXT]
        assert upgrade(conn, where=str(path)) == []
    Store(path).close()
    assert later == ["MainThread"]
    assert [number for number, _ in recorded(path)] == [*SHIPPED, NEXT]
    assert "notes" in tables(path)


def test_a_migration_that_fails_leaves_nothing_of_itself_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tether.db"
    Store(path).close()
    attempts: list[int] = []

    def half_done(conn: sqlite3.Connection) -> None:
        attempts.append(1)
        conn.execute("CREATE TABLE half (id INTEGER)")
        if len(attempts) == 1:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, Migration(NEXT, "half", half_done)))
    monkeypatch.setattr(migrations, "LATEST", NEXT)
    with pytest.raises(sqlite3.OperationalError):
        connect(str(path))
    assert "half" not in tables(path)
    assert [number for number, _ in recorded(path)] == SHIPPED
    connect(str(path)).close()
    assert "half" in tables(path)
    assert [number for number, _ in recorded(path)] == [*SHIPPED, NEXT]


def test_processes_opening_one_file_together_apply_each_migration_once(tmp_path: Path, later: list[str]) -> None:
    path = tmp_path / "tether.db"
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            connect(str(path)).close()
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=open_it, name=f"opener-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(later) == 1
    assert [number for number, _ in recorded(path)] == [*SHIPPED, NEXT]


def test_a_database_from_a_newer_tether_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    Store(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01T00:00:00.000Z')", (99,))
    with pytest.raises(StartupError) as caught:
        Store(path)
    assert str(caught.value) == (
        f"{path} is at schema 99, newer than this Tether knows ({LATEST}): run a Tether at least as new as the one "
        "that upgraded it"
    )
    assert [number for number, _ in recorded(path)] == [*range(1, LATEST + 1), 99]


def test_a_database_from_before_numbered_migrations_is_counted_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """CREATE TABLE device_operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, command_id TEXT NOT NULL UNIQUE,
                   operation_id TEXT NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL,
                   dispatch_state TEXT NOT NULL DEFAULT 'waiting', cleared INTEGER NOT NULL DEFAULT 0,
                   created_at TEXT NOT NULL, dispatched_at TEXT, received_at TEXT, started_at TEXT,
                   finished_at TEXT, updated_at TEXT NOT NULL, result TEXT, failure_reason TEXT, progress INTEGER,
                   UNIQUE (operation_id, device_id));
               INSERT INTO device_operations (command_id, operation_id, device_id, status, dispatch_state,
                   created_at, updated_at)
               VALUES ('c1', 'op-1', 'a', 'SUCCESSFUL', 'dispatched', 'T', 'T'),
                      ('c2', 'op-1', 'b', 'FAILED', 'failed', 'T', 'T'),
                      ('c3', 'op-1', 'c', 'PENDING', 'waiting', 'T', 'T');"""
        )
    Store(path).close()
    assert [number for number, _ in recorded(path)] == SHIPPED
    with closing(sqlite3.connect(path)) as conn:
        counts = conn.execute(
            "SELECT resolved, dispatched, dispatch_failed, success, waiting FROM operation_counts "
            "WHERE operation_id = 'op-1'"
        ).fetchone()
        columns = {row[1] for row in conn.execute("PRAGMA table_info(device_operations)")}
    assert counts == (3, 1, 1, 1, 1)
    assert {"deadline_at", "window_zone", "hidden", "updated_fragments"} <= columns


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("CREATE TABLE a (x);\nCREATE TABLE b (y);\n", ["CREATE TABLE a (x);\n", "CREATE TABLE b (y);\n"]),
        (
            "CREATE TRIGGER t AFTER DELETE ON a BEGIN\n    DELETE FROM b;\n    DELETE FROM c;\nEND;\n",
            ["CREATE TRIGGER t AFTER DELETE ON a BEGIN\n    DELETE FROM b;\n    DELETE FROM c;\nEND;\n"],
        ),
        ("-- why\nCREATE TABLE a (x); -- trailing\n\n", ["-- why\nCREATE TABLE a (x); -- trailing\n"]),
        ("INSERT INTO a VALUES ('one; two');\n", ["INSERT INTO a VALUES ('one; two');\n"]),
        ("", []),
    ],
)
def test_a_script_is_cut_into_whole_statements(script: str, expected: list[str]) -> None:
    assert list(statements(script)) == expected


def test_a_script_that_ends_mid_statement_is_refused() -> None:
    with pytest.raises(ValueError, match="an incomplete SQL statement: CREATE TABLE a"):
        list(statements("CREATE TABLE a (x);\nCREATE TABLE a (y\n"))


def test_migration_2_counts_a_failed_dispatch_only_for_a_failed_command(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    Store(path).close()
    rule = "NEW.dispatch_state = 'failed' AND NEW.status = 'FAILED'"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM schema_migrations WHERE number >= 2")
        conn.execute("DROP TRIGGER count_updated_device")  # as migration 1 made it before migration 2 existed
        conn.execute(
            "CREATE TRIGGER count_updated_device AFTER UPDATE OF status ON device_operations BEGIN SELECT 1; END"
        )
    Store(path).close()
    with closing(sqlite3.connect(path)) as conn:
        trigger = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'count_updated_device'").fetchone()[0]
    assert rule in trigger
    assert [number for number, _ in recorded(path)] == SHIPPED
