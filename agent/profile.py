"""A device's profile: the tags, groups and time zone it announces, changed remotely by UPDATE_DEVICE_CONFIG, and
its lost mode, announced in its inventory.

The agent config gives the starting values (without a configured zone, the operating system's is announced); changes
are kept in the device's state directory, so they outlive restarts and upgrades, and `reset` goes back to the config's
values (lost mode is not part of what it resets).
"""

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import HandlerError
from shared.arguments.management import DeviceConfigArguments, Label
from shared.messages import Announcement, TimeZone, utc_now

log = logging.getLogger(__name__)


PROFILE_FIELDS = frozenset({"tags", "groups", "time_zone"})
"""What UPDATE_DEVICE_CONFIG changes and resets."""


class LostMode(BaseModel):
    """ENABLE_LOST_MODE and DISABLE_LOST_MODE: announced as the inventory's `lost_mode`, so queries can select by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    since: datetime
    """When lost mode was first enabled (enabling it again keeps this), or when it was disabled."""
    message: str | None = None
    """The message shown while enabled."""

    def announced(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ProfileChanges(BaseModel):
    """What UPDATE_DEVICE_CONFIG changed (None keeps the config's value), and the lost mode, if ever set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[Label] | None = None
    groups: list[Label] | None = None
    time_zone: TimeZone | None = None
    lost_mode: LostMode | None = None

    def updated(self, change: DeviceConfigArguments) -> "ProfileChanges":
        base = ProfileChanges(lost_mode=self.lost_mode) if change.reset else self
        given = change.model_dump(include=set(PROFILE_FIELDS), exclude_none=True)
        return base.model_copy(update=given)

    def applied_to(self, announcement: Announcement) -> Announcement:
        """The announcement with these changes over the config's values, and the lost mode in its inventory."""
        update: dict[str, Any] = self.model_dump(include=set(PROFILE_FIELDS), exclude_none=True)
        if self.lost_mode is not None:
            update["inventory"] = {**announcement.inventory, "lost_mode": self.lost_mode.announced()}
        return announcement.model_copy(update=update)

    def changed_fields(self) -> list[str]:
        return sorted(self.model_dump(include=set(PROFILE_FIELDS), exclude_none=True))


class ProfileStore:
    """One JSON file per device, replaced atomically so a crash never leaves half a profile."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> ProfileChanges:
        """The stored changes; a missing file is none, an unreadable one is logged and ignored."""
        try:
            return ProfileChanges.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return ProfileChanges()
        except (OSError, ValidationError) as err:
            log.warning("ignoring the device profile in %s, which cannot be read: %s", self.path, err)
            return ProfileChanges()

    def save(self, changes: ProfileChanges) -> None:
        """Keep `changes`; raise HandlerError naming the file if it cannot be written."""
        partial = self.path.with_suffix(".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("w") as file:
                file.write(changes.model_dump_json(exclude_none=True))
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.path)
        except OSError as err:
            raise HandlerError(f"cannot keep the device profile in {self.path}: {err.strerror or err}") from err


class Profile:
    """The profile of one device: its config's values with the stored changes over them."""

    def __init__(self, store: ProfileStore, configured: Announcement) -> None:
        """`configured` carries the config's tags, groups and time zone; a zone of None leaves the device's own."""
        self._store = store
        self._configured = configured.model_dump(include={"tags", "groups", "time_zone"}, exclude_none=True)

    def announced(self, announcement: Announcement) -> Announcement:
        """`announcement` (what the device reports, its operating system's zone included) with the config's profile
        and the stored changes over it: a stored zone wins over the config's, which wins over the device's."""
        return self._store.load().applied_to(announcement.model_copy(update=self._configured))

    def set_lost_mode(self, message: str | None, current: Announcement) -> tuple[Announcement, LostMode]:
        """Keep lost mode enabled with `message`, or disabled for None; return the announcement it gives and it."""
        changes = self._store.load()
        before = changes.lost_mode
        if message is None:
            lost_mode = LostMode(enabled=False, since=utc_now())
        else:
            since = before.since if before is not None and before.enabled else utc_now()
            lost_mode = LostMode(enabled=True, since=since, message=message)
        self._store.save(changes.model_copy(update={"lost_mode": lost_mode}))
        return self.announced(current), lost_mode

    def change(self, change: DeviceConfigArguments, current: Announcement) -> tuple[Announcement, dict[str, Any]]:
        """Keep `change` and return the announcement it gives, with UPDATE_DEVICE_CONFIG's result."""
        changes = self._store.load().updated(change)
        self._store.save(changes)
        now = self.announced(current)
        result: dict[str, Any] = {"tags": now.tags, "groups": now.groups, "changed": changes.changed_fields()}
        if now.time_zone is not None:
            result["time_zone"] = now.time_zone
        return now, result
