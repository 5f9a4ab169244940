"""One `tether serve` per database: a second one would dispatch and time out every command again.

On SQLite the lock is an flock on a file beside the database, so the kernel lets go of it when the process ends,
however it ends (a SIGKILL leaves no stale lock to clear by hand). On PostgreSQL it is a session advisory lock held
by a connection of its own, which the server lets go of when that connection ends. The CLI's own commands
(`tether keys create`, `tether db`) do not take it: they may run beside a serving controller.
"""

import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from controller.errors import StartupError

if TYPE_CHECKING:
    import psycopg


class Serving(Protocol):
    def release(self) -> None: ...


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(f"{db_path.name}.serve-lock")


class ServeLock:
    """Held from `acquire` until `release` (or the process's end)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, db_path: Path) -> "ServeLock":
        """StartupError, in one line naming the other controller's pid, if another process holds it."""
        path = lock_path(db_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise StartupError(f"cannot make {path}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"another tether serve (pid {holder}) is serving {db_path}: one controller per SQLite file "
                "(stop it first, or give this one its own --db)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # a full disk: the pid only words a second serve's refusal; opening the database says what is wrong
        return cls(fd)

    def release(self) -> None:
        os.close(self._fd)


SERVE_LOCK = int.from_bytes(b"tserve", "big")
"""The PostgreSQL advisory lock a serving controller holds for as long as its connection lives."""


class PostgresServeLock:
    """Held by a connection of its own from `acquire` until `release` (or the process's, or the connection's, end)."""

    def __init__(self, conn: "psycopg.Connection[tuple[object, ...]]") -> None:
        self._conn = conn

    @classmethod
    def acquire(cls, url: str, *, replica: bool) -> "PostgresServeLock":
        """Exclusive for a controller with its own embedded broker, shared among replicas (which share an external
        broker and take turns leading): either kind refuses the other. StartupError, in one line, if another
        controller holds it so, or the server cannot be reached."""
        import psycopg

        from controller.store.postgres import CONNECT_TIMEOUT_S, redacted, unreachable

        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as err:
            raise StartupError(unreachable(url, err)) from None
        try:
            row = conn.execute(
                f"SELECT pg_try_advisory_lock{'_shared' if replica else ''}(%s), "
                "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted LIMIT 1), "
                "(SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted LIMIT 1)",
                (SERVE_LOCK, SERVE_LOCK & 0xFFFFFFFF, SERVE_LOCK & 0xFFFFFFFF),
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        if row is None or not row[0]:
            conn.close()
            holder = "unknown" if row is None or row[1] is None else f"server pid {row[1]}"
            raise StartupError(
                f"another tether serve ({holder}) is serving {redacted(url)} "
                + (
                    "with its embedded broker: stop it first; replicas of one database share one external broker"
                    if row is None or row[2] == "ExclusiveLock"
                    else "as a replica: replicas of one database share one external broker (give this one --broker)"
                )
            )
        return cls(conn)

    def release(self) -> None:
        self._conn.close()
