"""A connection and its transactions, with one ledger of SQL per noun beside it (keys, devices, operations, commands,
artifacts, signing keys, ...), on a SQLite file or a PostgreSQL database (controller/store/database.py)."""

import contextvars
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.store.artifacts import ArtifactLedger
from controller.store.cancellations import CancellationLedger
from controller.store.commands import CommandLedger
from controller.store.connection import Connection
from controller.store.control import OperationControl
from controller.store.database import Database
from controller.store.devicecontrol import DeviceControlView
from controller.store.devices import DeviceLedger
from controller.store.keys import KeyLedger
from controller.store.operations import OperationLedger
from controller.store.signing_keys import SigningKeyLedger
from controller.store.space import Space, is_full


class Store:
    """A synchronous store on one connection of its own; every multi-row write runs in one transaction."""

    def __init__(self, database: Database | Path | str) -> None:
        """The stores of one process share their Database, made once (given a path or URL, the store makes its
        own, and closes it with itself)."""
        self._owned = None if isinstance(database, Database) else Database(database)
        self.database: Database = self._owned or database  # type: ignore[assignment]
        self.dialect = self.database.dialect
        self._write_lock = self.database.write_lock
        self.space: Space = self.database.space
        self._writer: int | None = None
        """The thread inside `transaction`, if any."""
        self._on_commit: list[Callable[[], object]] = []
        self.conn: Connection = self.database.connect()
        self.keys = KeyLedger(self)
        self.devices = DeviceLedger(self)
        self.operations = OperationLedger(self)
        self.commands = CommandLedger(self)
        self.artifacts = ArtifactLedger(self)
        self.control = OperationControl(self)
        self.cancellations = CancellationLedger(self)
        self.devicecontrol = DeviceControlView(self)
        self.signing_keys = SigningKeyLedger(self)

    def close(self) -> None:
        self.conn.close()
        if self._owned is not None:
            self._owned.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Everything written inside is stored together or not at all; StorageFull if the disk has no room for it.

        A transaction opened inside another (on the same thread) is a savepoint of it: its failure undoes its own
        writes, and the outer one decides whether anything is stored.
        """
        if self._writer == threading.get_ident():
            with self._savepoint():
                yield self.conn
            return
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
                with self._space_checked():
                    changes = self._changes()
                    for statement in self.dialect.begin_writing():
                        self.conn.execute(statement)
                    try:
                        yield self.conn
                    except BaseException:
                        self._undo("ROLLBACK")
                        raise
                    self.conn.execute("COMMIT")
            finally:
                self._writer = None
                committed, self._on_commit = self._on_commit, []
        if changes is None or self._changes() != changes:
            self.space.stored()
        for call in committed:
            call()

    def _changes(self) -> int | None:
        """SQLite's count of rows this connection has written; None elsewhere (every commit then counts as a write)."""
        return self.conn.total_changes if isinstance(self.conn, sqlite3.Connection) else None

    def change_token(self) -> object:
        """A value that differs once anything was written: by this connection, another of this process (the REST
        API's) or, on PostgreSQL, another replica. Cheap enough to ask several times a second."""
        if isinstance(self.conn, sqlite3.Connection):
            # total_changes counts this connection's writes, data_version moves with other connections'.
            return (self.conn.total_changes, self.conn.execute("PRAGMA data_version").fetchone()[0])
        # A write transaction is given an id when it starts and leaves the snapshot's list of running ones as it ends.
        return self.conn.execute("SELECT CAST(pg_current_snapshot() AS text)").fetchone()[0]

    def on_commit(self, call: Callable[[], object]) -> None:
        """Call `call` (in the caller's context) once the current transaction is stored, never if it is not; now
        outside one. For what must not claim a write that a failure then undoes, such as a log line."""
        context = contextvars.copy_context()

        def bound() -> None:
            context.run(call)

        if self._writer == threading.get_ident():
            self._on_commit.append(bound)
        else:
            bound()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        pending = len(self._on_commit)
        self.conn.execute("SAVEPOINT nested")
        try:
            yield
        except BaseException:
            self._undo("ROLLBACK TO nested")
            del self._on_commit[pending:]
            raise
        self.conn.execute("RELEASE nested")

    def _undo(self, statement: str) -> None:
        # SQLite rolls the whole transaction back by itself on some errors (SQLITE_FULL among them).
        if self.conn.in_transaction:
            self.conn.execute(statement)

    @contextmanager
    def _space_checked(self) -> Iterator[None]:
        """A write that fails for lack of space raises StorageFull instead (and the disk counts as full)."""
        try:
            yield
        except Exception as err:
            if is_full(err):
                raise self.space.full(err) from err
            raise
