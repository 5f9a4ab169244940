"""What the store needs of a connection, whichever engine is behind it, and opening the SQLite file."""

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from controller.store.migrations import upgrade


class Row(Protocol):
    """A row read by name or by position (sqlite3.Row, and controller/store/postgres.Row)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


Parameters = Sequence[Any] | Mapping[str, Any]


class Connection(Protocol):
    """The part of sqlite3.Connection the store uses: statements take SQLite's parameters (`?`, `?N`, `:name`)."""

    def execute(self, sql: str, parameters: Parameters = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
    @property
    def in_transaction(self) -> bool: ...
    def close(self) -> None: ...


def open_database(path: str) -> sqlite3.Connection:
    """A connection with the settings every Tether connection has, the schema as it is."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        # Several connections write (the loop's, the store threads', the REST API's, the CLI's): one waits while
        # another resolves a large fleet.
        conn.execute("PRAGMA busy_timeout=60000")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


WAL_SWITCH_WAIT_S = 10.0


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is). Switching needs the file to itself, and SQLite answers "database
    is locked" at once rather than through the busy handler while another connection opens the new file too (a serve
    and a `tether keys create` starting together; 1 opener in 36 failed so, four at once): try again briefly."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def connect(path: str) -> sqlite3.Connection:
    """A connection to a database at the newest schema: the pending migrations, if any, applied first."""
    conn = open_database(path)
    try:
        upgrade(conn, where=path)
    except BaseException:
        conn.close()
        raise
    return conn
