"""Numbered schema migrations: each applied once, recorded in `schema_migrations`, in order, under one write lock.

A database opened by any Tether process is brought to the newest migration this code knows, in one transaction per
migration; a database that is already there costs one SELECT. One made by a newer Tether is refused rather than
written with an older idea of its tables. `tether db status` and `tether db upgrade` show and apply them by hand.
"""

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.clock import now_iso
from controller.errors import StartupError
from controller.store.dialect import SQLITE, Dialect, Engine
from controller.store.postgres_schema import NOT_ON_POSTGRESQL, postgresql_statements
from controller.store.postgres_schema import baseline as postgresql_baseline
from controller.store.postgres_schema import clears_owed as postgresql_clears_owed
from controller.store.schema import (
    CLEARS_OWED,
    COUNT_TRIGGERS,
    DROPPED_TRIGGERS,
    OWE_CLEARS_TRIGGER,
    RECOUNT,
    REDEFINED_TRIGGERS,
    SCHEMA,
    SIGNING_KEYS,
    add_missing_columns,
    has_table,
)

if TYPE_CHECKING:
    from controller.store.connection import Connection

RECORD = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    title: str
    apply: Callable[[sqlite3.Connection], None]
    """Runs inside the migration's transaction, on SQLite: it must not commit."""
    postgresql: "Callable[[Connection], None] | None" = None
    """The same on PostgreSQL; None where PostgreSQL's baseline was born with what it changes."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    applied: int
    """The newest migration recorded; 0 for a database that has none (new, or from before numbered migrations)."""
    pending: tuple[Migration, ...]


def _baseline(conn: sqlite3.Connection) -> None:
    """The schema as Tether had it when migrations were first numbered. A database from before (tables but no
    record) gets its missing columns, and its operation counts if it had none, before the rest is created."""
    add_missing_columns(conn)
    counted = has_table(conn, "operation_counts") or not has_table(conn, "device_operations")
    for statement in statements(SCHEMA + DROPPED_TRIGGERS + COUNT_TRIGGERS + ("" if counted else RECOUNT + ";")):
        conn.execute(statement)


def _successes_are_not_dispatch_failures(conn: sqlite3.Connection) -> None:
    """Count triggers that count a 'failed' dispatch only for a FAILED command. Every row stored so far that has
    one is FAILED (each stop wrote both), so the counts already stand and only the triggers change."""
    for statement in statements(REDEFINED_TRIGGERS + COUNT_TRIGGERS):
        conn.execute(statement)


def _postgresql_baseline(conn: "Connection") -> None:
    for statement in postgresql_baseline():
        conn.execute(statement)


def _signing_keys(conn: sqlite3.Connection) -> None:
    """The fleet's signing keys, none yet: the next `tether serve` records its own (controller/fleet_keys.py)."""
    for statement in statements(SIGNING_KEYS):
        conn.execute(statement)


def _postgresql_signing_keys(conn: "Connection") -> None:
    for statement in postgresql_statements(SIGNING_KEYS):
        conn.execute(statement)


def _nothing_on_sqlite(conn: sqlite3.Connection) -> None:
    """SQLite keeps what the migration changes on PostgreSQL."""


def _drop_indexes_postgresql_does_without(conn: "Connection") -> None:
    for index in NOT_ON_POSTGRESQL:
        conn.execute(f"DROP INDEX IF EXISTS {index}")


def _clears_owed(conn: sqlite3.Connection) -> None:
    for statement in statements(CLEARS_OWED + OWE_CLEARS_TRIGGER):
        conn.execute(statement)


def _postgresql_clears_owed(conn: "Connection") -> None:
    for statement in postgresql_clears_owed():
        conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: keys, devices, operations, commands, artifacts", _baseline, _postgresql_baseline),
    Migration(
        2,
        "a stopped command a client had ended SUCCESSFUL is no dispatch failure",
        _successes_are_not_dispatch_failures,
    ),
    Migration(3, "the signing keys the fleet has been given", _signing_keys, _postgresql_signing_keys),
    Migration(
        4,
        "PostgreSQL drops indexes it has no use for",
        _nothing_on_sqlite,
        _drop_indexes_postgresql_does_without,
    ),
    Migration(5, "the clears owed in a table of their own", _clears_owed, _postgresql_clears_owed),
)
LATEST = MIGRATIONS[-1].number


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of `script`, one at a time. executescript() would commit the transaction the
    migration runs in; a trigger's body holds semicolons of its own, which complete_statement() knows about."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().rstrip(";").strip():
                yield pending
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete SQL statement: {pending.strip()[:80]}")


def status(conn: "Connection", dialect: Dialect = SQLITE) -> SchemaStatus:
    applied = 0
    if conn.execute(dialect.table_exists(), ("schema_migrations",)).fetchone() is not None:
        applied = conn.execute("SELECT coalesce(max(number), 0) FROM schema_migrations").fetchone()[0]
    return SchemaStatus(applied, tuple(m for m in MIGRATIONS if m.number > applied))


def upgrade(conn: "Connection", dialect: Dialect = SQLITE, *, where: str) -> list[Migration]:
    """Apply what is pending, each migration in a transaction of its own; return what was applied.

    Another process may be upgrading the same database: the status is read again under the write lock (SQLite's, or
    the writers' advisory lock on PostgreSQL). StartupError, naming `where`, for a database made by a newer Tether."""
    if not status(conn, dialect).pending:
        _refuse_newer(conn, dialect, where)
        return []
    applied: list[Migration] = []
    while True:
        for statement in dialect.begin_writing():
            conn.execute(statement)
        try:
            conn.execute(RECORD)
            current = status(conn, dialect)
            if not current.pending:
                conn.execute("COMMIT")
                break
            migration = current.pending[0]
            if dialect.engine is Engine.SQLITE:
                assert isinstance(conn, sqlite3.Connection)
                migration.apply(conn)
            elif migration.postgresql is not None:
                migration.postgresql(conn)
            conn.execute(
                "INSERT INTO schema_migrations (number, title, applied_at) VALUES (?, ?, ?)",
                (migration.number, migration.title, now_iso()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(migration)
    _refuse_newer(conn, dialect, where)
    return applied


def _refuse_newer(conn: "Connection", dialect: Dialect, where: str) -> None:
    applied = status(conn, dialect).applied
    if applied > LATEST:
        raise StartupError(
            f"{where} is at schema {applied}, newer than this Tether knows ({LATEST}): run a Tether at least as new "
            "as the one that upgraded it"
        )
