"""Whether the database's disk has room: full from a write that fails for lack of space until space returns."""

import errno
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from controller.errors import StorageFull

log = logging.getLogger(__name__)

RESUME_MARGIN_BYTES = 1024 * 1024
"""Free space the file system must gain after the last failed write for the disk to count as usable again: a page
or two freed by chance is no room for the next batch of statuses."""
CHECK_INTERVAL_S = 1.0
"""`problem` asks the file system at most this often."""

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_POSTGRESQL_DISK_FULL = "53100"

REFUSED = "the controller's disk is full: nothing was stored; retry once space is freed"
"""What a client refused for lack of space is told (one line: the details are in the controller's log)."""


def is_full(err: BaseException) -> bool:
    """Whether an error says there is no room: no space or quota left, or SQLite's page limit reached (SQLITE_FULL)."""
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    if getattr(err, "sqlstate", None) == _POSTGRESQL_DISK_FULL:
        return True
    return isinstance(err, OSError) and err.errno in _FULL_ERRNOS


def unopenable(database: Path, err: BaseException) -> str:
    """Why `database` cannot be opened, in one line; saying so when its disk has no room, which SQLite may report
    only as "disk I/O error" (its WAL's shared memory file cannot be made)."""
    reason = f"cannot open the database {database}: {err}"
    try:
        found = os.statvfs(database.parent)
    except OSError:
        return reason
    if is_full(err) or found.f_bavail * found.f_frsize < RESUME_MARGIN_BYTES:
        return f"{reason}; its disk is full: free some space and start again"
    return reason


class Space:
    """Shared, like their write lock, by the stores of one database in a process; safe to use from any thread.

    It logs one line when the disk fills and one when space returns, however many writes fail in between.
    """

    def __init__(self, database: Path | str | None, where: str | None = None) -> None:
        """`database` is the SQLite file whose disk is watched; None for a server's database (`where`), whose disk is
        not this machine's: that it has room again is learnt from a write that succeeds."""
        self.where = where or str(database)
        self._directory = None if database is None else Path(database).parent
        self._lock = threading.Lock()
        self._full: str | None = None
        """Why the last write failed, while the disk counts as full."""
        self._free_then = 0
        self._checked_at = 0.0

    def full(self, err: BaseException) -> StorageFull:
        """Record a write that failed for lack of space; the error to raise in its place."""
        free = self._free()
        with self._lock:
            first = self._full is None
            self._full, self._free_then, self._checked_at = str(err), free, time.monotonic()
        if first:
            log.error(
                "disk is full under %s (%s): new operations are refused (507) and statuses wait on the broker "
                "until space is freed",
                self.where,
                err,
            )
        return StorageFull(REFUSED)

    def stored(self) -> None:
        """A write stored something: there is room again."""
        if self._full is not None:
            self._recovered("a write succeeded")

    def problem(self) -> str | None:
        """Why writes fail, while they do; None once the disk has room (asking the file system now and then)."""
        if self._full is None:
            return None
        with self._lock:
            now = time.monotonic()
            due, reason, free_then = now - self._checked_at >= CHECK_INTERVAL_S, self._full, self._free_then
            if due:
                self._checked_at = now
        if due and (free := self._free()) >= free_then + RESUME_MARGIN_BYTES:
            self._recovered(f"{free // 1024} KiB free")
            return None
        return f"disk full ({reason}); writes are refused until space is freed"

    def _recovered(self, how: str) -> None:
        with self._lock:
            was_full, self._full = self._full is not None, None
        if was_full:
            log.info("disk space is back under %s (%s): writes resume", self.where, how)

    def _free(self) -> int:
        if self._directory is None:
            return 0
        try:
            found = os.statvfs(self._directory)
        except OSError:
            return 0
        return found.f_bavail * found.f_frsize
