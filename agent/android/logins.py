"""The broker logins of the Android devices a host bridges: `<device_id> <password>` lines in a private file.

Under a broker ACL (`tether broker acl`) a login reaches only the device named by its username, so each bridged
device needs a login of its own; the host's reaches only the host. The file is read again whenever it changes, so a
login added, changed or taken out takes effect without restarting the agent.
"""

import logging
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.errors import TopicError
from shared.topics import validate_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParsedLogins:
    passwords: Mapping[str, str]
    """Device id -> password."""
    problems: tuple[str, ...]
    """One line per line that was skipped, naming its number and never its password."""


def parse_logins(text: str) -> ParsedLogins:
    """The logins in `text`: blank lines and `#` comments are skipped, and so is (with a problem) a line that is not
    `<device_id> <password>` or names a device given before."""
    passwords: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.strip().split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            problems.append(f"line {number}: expected '<device_id> <password>'")
            continue
        device_id, password = words
        try:
            validate_id(device_id, "device id")
        except TopicError as err:
            problems.append(f"line {number}: {err}")
            continue
        if device_id in passwords:
            problems.append(f"line {number}: {device_id} was given before, on an earlier line that is used")
            continue
        passwords[device_id] = password
    return ParsedLogins(passwords, tuple(problems))


class LoginsFile:
    """The logins in `path`, read again when its modification time or size changes; what is wrong is logged once
    per change. A file that cannot be read holds no logins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._passwords: Mapping[str, str] = {}
        self._version: tuple[int, int] | str | None = None
        """(mtime, size) of what was read last, or the error the last attempt logged."""

    def password(self, device_id: str) -> str | None:
        """The password of `device_id`'s login, from the file as it is now; None if it has none."""
        self._refresh()
        return self._passwords.get(device_id)

    def _refresh(self) -> None:
        try:
            status = self.path.stat()
            version: tuple[int, int] | str = (status.st_mtime_ns, status.st_size)
            if version == self._version:
                return
            text = self.path.read_text()
        except OSError as err:
            if self._version != err.strerror:
                log.warning("cannot read the Android devices' broker logins in %s: %s", self.path, err.strerror)
                self._version = err.strerror
            self._passwords = {}
            return
        parsed = parse_logins(text)
        for problem in parsed.problems:
            log.warning("%s %s: skipped", self.path, problem)
        if stat.S_IMODE(status.st_mode) & 0o077:
            log.warning("%s holds broker passwords but other users may read it: chmod 600 it", self.path)
        self._passwords = parsed.passwords
        self._version = version
