"""PostgreSQL through psycopg 3 and its pool, behind the part of Connection the store uses."""

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.adapt
import psycopg.types.numeric
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from controller.errors import StorageUnavailable
from controller.store.connection import Cursor, Parameters
from controller.store.dialect import psycopg_statement

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")

CONNECT_TIMEOUT_S = 10
"""How long opening one connection may take before the server counts as unreachable."""
POOL_WAIT_S = 5.0
"""How long a store waits for a connection from the pool while the server is down (the pool reconnects meanwhile):
the controller's own loop reads through a store, and must not stall long while PostgreSQL restarts."""


_REPEATABLE = ("SELECT", "BEGIN")
"""Statements that change nothing if they run twice: only these are repeated on a fresh connection."""


class Row(tuple[Any, ...]):
    """A row read by position or by column name, as Row is; one subclass per list of column names."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {name: index for index, name in enumerate(names)}})


def _rows(cursor: "psycopg.Cursor[Any]") -> Callable[[Sequence[Any]], Row]:
    """psycopg's row factory: rows of a class that knows the statement's column names."""
    description = cursor.description
    row_class = _row_class(tuple(column.name for column in description or ()))
    return row_class


class _BoolAsInteger(psycopg.types.numeric.IntDumper):
    """Python's True and False as 1 and 0, the integers the schema stores them as (SQLite binds them so too)."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(url: str, err: BaseException) -> str:
    """Why the server at `url` cannot be used, in one line (psycopg's messages run over several)."""
    reason = " ".join(str(err).split()) or type(err).__name__
    return f"PostgreSQL at {redacted(url)} is unavailable: {reason}"


class PostgresPool:
    """The process's connections to one PostgreSQL database, reconnected by the pool when the server comes back."""

    def __init__(self, url: str, size: int) -> None:
        # The pool logs every failed attempt to reconnect, over several lines; this module logs an outage once.
        if logging.getLogger("psycopg.pool").level == logging.NOTSET:
            logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self.url = url
        self._state_lock = threading.Lock()
        self._down: str | None = None
        """Why the server could not be used, while it cannot."""
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            open=False,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "row_factory": _rows, "connect_timeout": CONNECT_TIMEOUT_S},
            name="tether",
            reconnect_failed=self._reconnect_failed,
        )

    def open(self) -> None:
        """Open the pool and wait for its first connection; StorageUnavailable in one line if the server cannot be
        reached or refuses the login. Asked once directly first: the pool would only log why, and retry until its
        timeout."""
        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as err:
            raise StorageUnavailable(unreachable(self.url, err)) from None
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as err:
            self._pool.close()
            raise StorageUnavailable(unreachable(self.url, err)) from None

    def close(self) -> None:
        self._pool.close()

    def connection(self) -> "PostgresConnection":
        return PostgresConnection(self)

    def take(self) -> "psycopg.Connection[Row]":
        try:
            conn = self._pool.getconn(timeout=POOL_WAIT_S)
        except PoolTimeout as err:
            raise self.unavailable(err) from err
        self._available()
        return conn

    def unavailable(self, err: BaseException) -> StorageUnavailable:
        """Record that the server cannot be used (logged once until it can again); the error to raise."""
        line = unreachable(self.url, err)
        with self._state_lock:
            first, self._down = self._down is None, line
        if first:
            log.error("%s; what cannot be stored waits (statuses on the broker) and is retried", line)
        return StorageUnavailable(line)

    def _available(self) -> None:
        if self._down is not None:
            with self._state_lock:
                was_down, self._down = self._down is not None, None
            if was_down:
                log.info("PostgreSQL at %s is reachable again", redacted(self.url))

    def give_back(self, conn: "psycopg.Connection[Row]") -> None:
        self._pool.putconn(conn)  # a broken connection is discarded, and replaced when one is next wanted

    @staticmethod
    def _configure(conn: "psycopg.Connection[Any]") -> None:
        conn.adapters.register_dumper(bool, _BoolAsInteger)

    def _reconnect_failed(self, pool: ConnectionPool) -> None:
        log.error("%s; retrying", unreachable(self.url, ConnectionError("reconnection attempts failed")))


class PostgresConnection:
    """One connection of the pool held by one store, taken again if the server drops it.

    A statement on a dropped connection raises StorageUnavailable (nothing of an open transaction was stored); the
    next statement outside a transaction takes a new connection from the pool.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool
        self._conn: psycopg.Connection[Row] | None = None

    def __enter__(self) -> "PostgresConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> "psycopg.Connection[Row]":
        if self._conn is None:
            self._conn = self._pool.take()
        return self._conn

    def execute(self, sql: str, parameters: Parameters = (), /) -> Cursor:
        statement, values = psycopg_statement(sql, parameters)
        repeatable = not self.in_transaction and statement.lstrip().startswith(_REPEATABLE)
        with self._unavailable_raised():
            try:
                return self._connection().execute(statement, values)
            except psycopg.OperationalError:
                if not (repeatable and self._dropped()):
                    raise
            # The connection held since before the server restarted was dead: a read, or the BEGIN of a
            # transaction, is tried once more on a fresh one rather than failing what is otherwise back.
            return self._connection().execute(statement, values)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        rows = [psycopg_statement(sql, row) for row in parameters]
        with self._unavailable_raised():
            cursor = self._connection().cursor()
            if rows:
                cursor.executemany(rows[0][0], [values for _, values in rows])
            return cursor

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                conn.rollback()
            self._pool.give_back(conn)

    def _dropped(self) -> bool:
        """Give a connection that has died back to the pool (which discards it); whether it had."""
        if self._conn is None or not (self._conn.broken or self._conn.closed):
            return False
        conn, self._conn = self._conn, None
        self._pool.give_back(conn)
        return True

    @contextmanager
    def _unavailable_raised(self) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as err:
            if self._conn is None or self._dropped():
                raise self._pool.unavailable(err) from err
            raise
