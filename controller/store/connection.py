"""Opening the SQLite file: WAL so the CLI can write keys beside `tether serve`, and the schema brought up to date."""

import sqlite3

from controller.store.migrations import upgrade


def open_database(path: str) -> sqlite3.Connection:
    """A connection with the settings every Tether connection has, the schema as it is."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Several connections write (the loop's, the store threads', the REST API's, the CLI's): one waits while
        # another resolves a large fleet.
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def connect(path: str) -> sqlite3.Connection:
    """A connection to a database at the newest schema: the pending migrations, if any, applied first."""
    conn = open_database(path)
    try:
        upgrade(conn, where=path)
    except BaseException:
        conn.close()
        raise
    return conn
