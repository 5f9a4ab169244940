"""One `tether serve` per SQLite file: a second one on the same file would dispatch and time out every command again.

The lock is an flock on a file beside the database, so the kernel lets go of it when the process ends, however it
ends (a SIGKILL leaves no stale lock to clear by hand). The CLI's own commands (`tether keys create`, `tether db`)
do not take it: they may run beside a serving controller.
"""

import fcntl
import os
from pathlib import Path

from controller.errors import StartupError


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
