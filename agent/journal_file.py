"""Opens the journal's SQLite file: one that cannot be read is set aside, kept for forensics, and a fresh one begun.

A damaged journal must not keep the agent from starting (systemd would restart it into the same failure forever).
What the damaged journal knew is lost, and `agent/journal.py` records the loss in the fresh one so that commands the
agent may already have run are failed instead of run again. Errors that are not the file's fault (another agent holding
it, a full or read-only disk) are raised as JournalError: setting a sound journal aside would lose it for nothing.
"""

import logging
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import JournalError

log = logging.getLogger(__name__)

COMPANIONS = ("-wal", "-shm")
"""SQLite's write-ahead log and its index, kept next to the file and named after it."""
UNREADABLE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CANTOPEN"})
"""SQLite's errors for a file that is damaged, not a database, or cannot be opened at all (a directory in its place)."""
LOST_SUFFIX = ".lost-"


class _Unreadable(Exception):
    """The journal file cannot be used; str() says why."""


Initialize = Callable[[sqlite3.Connection], None]
"""Creates the journal's tables (and, in a journal begun after a loss, records the loss)."""


def connect(
    path: Path, schema: str, initialize: Initialize, on_loss: Callable[[str], Initialize]
) -> sqlite3.Connection:
    """A connection to the sound journal at `path`, created by `initialize` if there was none.

    An unreadable one is moved to `<name>.lost-<UTC time>`, and a fresh one created by `on_loss(where it went)`. A
    journal missing while a lost one is kept beside it was lost between those two steps: it is begun again as lost.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(path):
        earlier = sorted(path.parent.glob(f"{path.name}{LOST_SUFFIX}*[0-9Z]"))
        _create(path, on_loss(str(earlier[-1])) if earlier else initialize)
    try:
        return _open(path, schema)
    except _Unreadable as err:
        kept = _set_aside(path)
        # One line: what happened, where the old journal went, and what follows from it.
        log.error(
            "journal %s cannot be read (%s): moved it to %s and began a fresh one; commands the agent may have run "
            "before are failed as 'journal lost', never run again",
            path,
            err,
            kept,
        )
        _create(path, on_loss(str(kept)))
        return _open(path, schema)


def _open(path: Path, schema: str) -> sqlite3.Connection:
    if not path.is_file():
        raise _Unreadable("it is not a regular file")
    if path.stat().st_size == 0:
        raise _Unreadable("it is empty")  # a journal is created whole (see _create): its contents were lost
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as err:
        raise _failure(path, err) from err
    try:
        # Checked before anything is written to it, so that a file set aside is kept as it was found.
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise _Unreadable(f"damaged: {'; '.join(problems)}")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'commands'").fetchone() is None:
            raise _Unreadable("it holds no journal")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a command marked executing must survive a power cut that the command itself may cause (REBOOT).
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(schema)  # adds what a journal of an older agent lacks
    except (sqlite3.Error, _Unreadable) as err:
        conn.close()
        if isinstance(err, _Unreadable):
            raise
        raise _failure(path, err) from err
    return conn


def _failure(path: Path, err: sqlite3.Error) -> Exception:
    if getattr(err, "sqlite_errorname", None) in UNREADABLE:
        return _Unreadable(str(err))
    return JournalError(f"cannot open the journal {path}: {err}")


def _create(path: Path, initialize: Initialize) -> None:
    """Build a journal beside `path` and rename it into place, so that a journal file is never seen half made."""
    building = path.with_name(path.name + ".new")
    try:
        for leftover in (building, *(Path(f"{building}{suffix}") for suffix in COMPANIONS)):
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(building, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            initialize(conn)
        finally:
            conn.close()  # folds the write-ahead log into the file, and removes it
        with building.open("rb") as built:
            os.fsync(built.fileno())
        os.replace(building, path)
        _sync_directory(path.parent)
    except (OSError, sqlite3.Error) as err:
        raise JournalError(f"cannot create the journal {path}: {err}") from err


def _set_aside(path: Path) -> Path:
    """Move the journal and its companions to an unused `<name>.lost-<UTC time>` name; return it."""
    base = path.with_name(f"{path.name}{LOST_SUFFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
    kept, number = base, 1
    while os.path.lexists(kept):
        number += 1
        kept = base.with_name(f"{base.name}.{number}")
    try:
        for suffix in ("", *COMPANIONS):
            source = Path(f"{path}{suffix}")
            if os.path.lexists(source):
                os.replace(source, f"{kept}{suffix}")
        _sync_directory(path.parent)
    except OSError as err:
        raise JournalError(f"the journal {path} cannot be read, and cannot be moved aside either: {err}") from err
    return kept


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
