"""Numbered migrations on each engine: applied once and recorded, each whole or not at all, never by two processes,
never down; and PostgreSQL's schema beside SQLite's."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from controller.database_cli import db_group
from controller.errors import StartupError
from controller.store import Store, migrations
from controller.store.connection import Connection, open_database
from controller.store.database import Database, is_url
from controller.store.dialect import SQLITE, Dialect
from controller.store.migrations import LATEST, MIGRATIONS, Migration, statements, status, upgrade
from controller.store.postgres import redacted
from controller.store.postgres_schema import NOT_ON_POSTGRESQL
from tests.fixtures_postgres import PASSWORD, PostgresDatabase

SHIPPED = list(range(1, LATEST + 1))
NEXT = LATEST + 1
TABLES = {"api_keys", "devices", "operations", "device_operations", "operation_counts", "schema_migrations"}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the test's database is to be, not opened yet: a SQLite file, or an empty PostgreSQL database reached
    with a password (which no message may show)."""
    if request.param == "sqlite":
        return str(tmp_path / "tether.db")
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.password_url


def shown(location: str) -> str:
    return redacted(location) if is_url(location) else location


def rows(location: str, sql: str) -> list[tuple[Any, ...]]:
    """What a statement returns, read (or written) past Tether: nothing is migrated by looking."""
    if is_url(location):
        with closing(psycopg.connect(location, autocommit=True)) as pg:
            cursor = pg.execute(sql)
            return [tuple(row) for row in cursor] if cursor.description else []
    with closing(sqlite3.connect(location)) as conn, conn:
        return [tuple(row) for row in conn.execute(sql)]


def recorded(location: str) -> list[tuple[Any, ...]]:
    return rows(location, "SELECT number, applied_at FROM schema_migrations ORDER BY number")


def tables(location: str) -> set[str]:
    if is_url(location):
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
    return {name for (name,) in rows(location, sql)}


@contextmanager
def unmigrated(location: str) -> Iterator[tuple[Connection, Dialect]]:
    """A connection to the database as it is, as `tether db` has one, and its dialect."""
    if not is_url(location):
        with closing(open_database(location)) as conn:
            yield conn, SQLITE
        return
    database = Database(location, migrate=False)
    try:
        with closing(database.connect()) as conn:
            yield conn, database.dialect
    finally:
        database.close()


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A migration NEXT that this code does not ship, recording each time it runs; and what it ran."""
    ran: list[str] = []

    def add_notes(conn: Connection) -> None:
        ran.append(threading.current_thread().name)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")

    shipped = (*migrations.MIGRATIONS, Migration(NEXT, "notes", add_notes, add_notes))
    monkeypatch.setattr(migrations, "MIGRATIONS", shipped)
    monkeypatch.setattr(migrations, "LATEST", NEXT)
    return ran


def test_a_new_database_is_made_at_the_newest_schema_and_says_so(location: str) -> None:
    Database(location).close()
    assert tables(location) >= TABLES
    assert [number for number, _ in recorded(location)] == list(range(1, LATEST + 1))
    with unmigrated(location) as (conn, dialect):
        assert status(conn, dialect).applied == LATEST
        assert status(conn, dialect).pending == ()


def test_opening_again_applies_nothing_again(location: str) -> None:
    Database(location).close()
    first = recorded(location)
    for _ in range(3):
        Database(location).close()
    assert recorded(location) == first


def test_a_pending_migration_is_applied_once_on_the_next_open(location: str, later: list[str]) -> None:
    with unmigrated(location) as (conn, dialect):
        assert [m.number for m in upgrade(conn, dialect, where=location)] == [*SHIPPED, NEXT]
        assert upgrade(conn, dialect, where=location) == []
    Database(location).close()
    assert later == ["MainThread"]
    assert [number for number, _ in recorded(location)] == [*SHIPPED, NEXT]
    assert "notes" in tables(location)


def test_a_migration_that_fails_leaves_nothing_of_itself_and_is_tried_again(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Database(location).close()
    attempts: list[int] = []

    def half_done(conn: Connection) -> None:
        attempts.append(1)
        conn.execute("CREATE TABLE half (id INTEGER)")
        if len(attempts) == 1:
            raise OSError("disk I/O error")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, Migration(NEXT, "half", half_done, half_done)))
    monkeypatch.setattr(migrations, "LATEST", NEXT)
    with pytest.raises(OSError, match="disk I/O error"):
        Database(location)
    assert "half" not in tables(location)
    assert [number for number, _ in recorded(location)] == SHIPPED
    Database(location).close()
    assert "half" in tables(location)
    assert [number for number, _ in recorded(location)] == [*SHIPPED, NEXT]


def test_processes_opening_one_database_together_apply_each_migration_once(location: str, later: list[str]) -> None:
    """Each opener has its own connections, as separate processes (or replicas) would."""
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            Database(location).close()
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=open_it, name=f"opener-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(later) == 1
    assert [number for number, _ in recorded(location)] == [*SHIPPED, NEXT]


def test_a_database_from_a_newer_tether_is_refused_in_one_line_and_left_alone(location: str) -> None:
    Database(location).close()
    rows(location, "INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01T00:00:00.000Z')")
    with pytest.raises(StartupError) as caught:
        Database(location)
    assert str(caught.value) == (
        f"{shown(location)} is at schema 99, newer than this Tether knows ({LATEST}): run a Tether at least as new as "
        "the one that upgraded it"
    )
    assert PASSWORD not in str(caught.value)
    assert [number for number, _ in recorded(location)] == [*range(1, LATEST + 1), 99]


def test_db_status_and_upgrade_on_postgresql_say_where_the_schema_is_without_the_password(
    postgres_database: PostgresDatabase,
) -> None:
    """`tether db` as an operator runs it (tests/e2e/test_database_cli.py runs it on SQLite files)."""
    url = postgres_database.password_url
    where = redacted(url)

    def tether_db(command: str) -> str:
        done = CliRunner().invoke(db_group, [command, "--db", url])
        assert done.exit_code == 0, done.output
        assert PASSWORD not in done.output
        return done.output

    pending = "".join(f"pending {m.number}: {m.title}\n" for m in MIGRATIONS)
    assert tether_db("status") == f"{where}: schema 0 of {LATEST}\n{pending}"
    assert tables(url) == set()  # looking made nothing
    applied = "".join(f"applied {m.number}: {m.title}\n" for m in MIGRATIONS)
    assert tether_db("upgrade") == f"{applied}{where}: schema {LATEST}, up to date\n"
    assert tether_db("upgrade") == f"{where}: schema {LATEST}, up to date\n"
    assert tether_db("status") == f"{where}: schema {LATEST} of {LATEST}\n"
    rows(url, "INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01T00:00:00.000Z')")
    assert tether_db("status") == f"{where}: schema 99 of {LATEST} (newer than this Tether)\n"


def test_postgresql_has_sqlite_s_tables_and_columns_and_indexes(
    tmp_path: Path, postgres_database: PostgresDatabase
) -> None:
    """PostgreSQL's schema is SQLite's text converted (controller/store/postgres_schema.py): the two are the same
    tables, each with the same columns in the same order, and the same named indexes but those PostgreSQL drops,
    listed in one place with why."""
    sqlite_file, url = str(tmp_path / "tether.db"), postgres_database.url
    Database(sqlite_file).close()
    Database(url).close()

    def sqlite_columns(table: str) -> list[str]:
        return [name for _, name, *_ in rows(sqlite_file, f"PRAGMA table_info({table})")]

    def postgresql_columns(table: str) -> list[str]:
        found = rows(
            url,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            f"AND table_name = '{table}' ORDER BY ordinal_position",
        )
        return [name for (name,) in found]

    assert tables(url) == tables(sqlite_file)
    for table in sorted(tables(sqlite_file)):
        assert postgresql_columns(table) == sqlite_columns(table), table
    sqlite_indexes = rows(sqlite_file, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    postgresql_indexes = rows(
        url,
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'",
    )
    sqlite_names = {name for (name,) in sqlite_indexes}
    assert set(NOT_ON_POSTGRESQL) <= sqlite_names
    assert {name for (name,) in postgresql_indexes} == sqlite_names - set(NOT_ON_POSTGRESQL)


def test_a_database_from_before_numbered_migrations_is_counted_and_recorded(tmp_path: Path) -> None:
    """SQLite's alone: Tether ran on PostgreSQL only once migrations were numbered."""
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
    assert [number for number, _ in recorded(str(path))] == SHIPPED
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
    """SQLite's alone: PostgreSQL's baseline was born with it."""
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
    assert [number for number, _ in recorded(str(path))] == SHIPPED


def made_before(location: str, monkeypatch: pytest.MonkeyPatch, migration: int) -> None:
    """A database as the Tether before `migration` made it."""
    with monkeypatch.context() as before:
        before.setattr(migrations, "MIGRATIONS", MIGRATIONS[: migration - 1])
        before.setattr(migrations, "LATEST", migration - 1)
        Database(location).close()


def test_migration_3_gives_a_database_from_before_it_an_empty_record_of_signing_keys(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `tether serve` after the upgrade records its keys (tests/controller/test_fleet_keys.py)."""
    made_before(location, monkeypatch, 3)
    assert "signing_keys" not in tables(location)
    Database(location).close()
    assert "signing_keys" in tables(location)
    assert rows(location, "SELECT key_id FROM signing_keys") == []
    assert [number for number, _ in recorded(location)] == SHIPPED


def test_the_clears_a_database_owed_before_migration_5_are_owed_after_it(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_before(location, monkeypatch, 5)
    columns = "command_id, operation_id, device_id, status, cleared, created_at, updated_at"
    for command_id, finished, cleared in (
        ("owed", "FAILED", 0),
        ("done", "SUCCESSFUL", 1),
        ("running", "EXECUTING", 0),
    ):
        rows(
            location,
            f"INSERT INTO device_operations ({columns}) "
            f"VALUES ('{command_id}', 'op', 'dev-{command_id}', '{finished}', {cleared}, '2026-12-06', '2026-12-06')",
        )

    Database(location).close()

    assert rows(location, "SELECT device_id, command_id FROM clears_owed") == [("dev-owed", "owed")]
