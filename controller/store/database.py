"""The one object per process that owns a database: where it is, its dialect, its schema, its connections, the lock
this process's writers share and what is known of its disk."""

import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from controller.store.connection import Connection, connect, open_database
from controller.store.dialect import POSTGRESQL, SQLITE, Dialect
from controller.store.migrations import upgrade
from controller.store.space import Space

if TYPE_CHECKING:
    from controller.store.postgres import PostgresPool

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")

POOL_SIZE = 10
"""PostgreSQL connections one process may hold: one per store (the controller's own, its store threads', the REST
API's), with room for the CLI's."""


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


class Database:
    """A SQLite file, or a PostgreSQL database named by a `postgresql://` URL; opened (and its schema brought up to
    date, once) when made, closed by `close`."""

    def __init__(self, location: Path | str, *, migrate: bool = True) -> None:
        """`migrate=False` leaves a PostgreSQL database's schema as it is, for `tether db`."""
        self.location = str(location)
        self.write_lock = threading.Lock()
        """Held by this process's store inside a write transaction: a writer waiting for another wakes the moment
        it is done, where SQLite's busy handler would sleep in steps of up to 100 ms."""
        self._pool: PostgresPool | None = None
        self.dialect: Dialect = SQLITE
        if is_url(self.location):
            self._open_postgresql(migrate)
        else:
            self.space = Space(self.location)
            if self.location != ":memory:":
                Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            connect(self.location).close()  # the schema brought up to date once, by the first connection

    def _open_postgresql(self, migrate: bool) -> None:
        from controller.store.postgres import SCHEMES, PostgresPool, redacted

        scheme = self.location.split(":", 1)[0]
        if scheme not in SCHEMES:
            raise ValueError(
                f"{scheme}: is not a database this Tether knows: give a SQLite file or a postgresql:// URL"
            )
        self.dialect = POSTGRESQL
        self.space = Space(None, redacted(self.location))
        self._pool = PostgresPool(self.location, POOL_SIZE)
        self._pool.open()
        if not migrate:
            return
        try:
            with self._pool.connection() as conn:
                upgrade(conn, POSTGRESQL, where=self.shown)
        except BaseException:
            self._pool.close()
            raise

    @property
    def shown(self) -> str:
        """The location as messages and logs show it: a URL without its password."""
        return self.space.where

    @property
    def integrity_errors(self) -> tuple[type[Exception], ...]:
        """What a statement raises when it breaks a constraint (a unique name taken)."""
        if self._pool is None:
            return (sqlite3.IntegrityError,)
        import psycopg

        return (psycopg.IntegrityError,)

    def connect(self) -> Connection:
        """A connection of its own for one store."""
        if self._pool is None:
            return open_database(self.location)
        return self._pool.connection()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
