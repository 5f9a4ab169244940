"""Files the agent writes whole: replaced atomically, so a crash or a full disk never leaves half of one."""

import os
import tempfile
from pathlib import Path

from agent.errors import HandlerError


def _make_readable_directories(directory: Path) -> None:
    """Create `directory` and its missing parents 0755 whatever the umask (tetherd's unit sets 077), so that what is
    written into them can be read by the users it is for."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        made.chmod(0o755)


def write_atomically(path: Path, content: bytes) -> bytes | None:
    """Replace `path` atomically with `content`, world-readable (trust anchors, unit files, agent state); return what
    it held before."""
    try:
        _make_readable_directories(path.parent)
        try:
            previous: bytes | None = path.read_bytes()
        except FileNotFoundError:
            previous = None
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o644)
                file.write(content)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise HandlerError(f"cannot write {path}: {err.strerror or err}") from err
    return previous
