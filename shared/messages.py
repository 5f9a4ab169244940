"""Pydantic models of every MQTT payload, and the one pair of functions that encode and decode them."""

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.errors import PayloadError
from shared.operations import DeviceStatus, OperationType, Platform, PresenceState
from shared.schedule import valid_zone
from shared.signing import Signer, canonical
from shared.topics import ID_PATTERN, ID_RULE

MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger payloads are refused on both sides; big outputs (logs, screenshots) travel over HTTP instead."""
MAX_ARGUMENTS_BYTES = MAX_PAYLOAD_BYTES - 16 * 1024
"""An operation's arguments as its commands carry them (`signing.canonical`): what a command holds besides (ids,
times, schedule, upload link, signature) takes a few KiB, so every command of an operation that fits reaches its
device."""


def _valid_time_zone(value: str) -> str:
    if not valid_zone(value):
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
"""Checked by pydantic's own pattern matching, not a Python validator: a status carries two, and the controller
decodes every status; `decode` words a mismatch as `validate_id` does."""
TimeZone = Annotated[str, AfterValidator(_valid_time_zone)]
"""A zone this host's tz database knows: for what this host applies (a profile, SET_TIMEZONE)."""

_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")


def _zone_name(value: str) -> str:
    if len(value) > 64 or not _ZONE_NAME.fullmatch(value):
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


AnnouncedZone = Annotated[str, AfterValidator(_zone_name)]
"""A zone as a device names it: shaped like an IANA name, but not necessarily known to the controller's tz database,
which may be older than the device's. A device announcing one is still registered; the schedule maths read its
device-time windows in UTC, with a note that says so (shared/schedule.py)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    # Unknown fields are ignored so that an older peer still understands a newer one's messages.
    model_config = ConfigDict(frozen=True, extra="ignore")


ARTIFACT_TYPES = frozenset(
    {
        OperationType.CAPTURE_SCREENSHOT,
        OperationType.COLLECT_LOGS,
        OperationType.REQUEST_DPCLOG,
        OperationType.REQUEST_BUGREPORT,
    }
)
"""Types whose output is a file, uploaded to the controller over HTTP rather than sent through MQTT."""


class ArtifactUpload(_Message):
    """Where and with what one-time token a command's artifact goes: `PUT url` with `Authorization: Bearer token`."""

    url: AnyHttpUrl
    token: str = Field(min_length=16, max_length=256)
    max_bytes: int = Field(gt=0)


class Command(_Message):
    """Controller -> device: run one operation once. Retained, QoS 1, one topic per command."""

    command_id: Id
    operation_id: str = Field(min_length=1, max_length=128)
    device_id: Id
    operation_type: OperationType
    arguments: dict[str, Any] = Field(default_factory=dict)
    issued_at: AwareDatetime
    schedule: dict[str, Any] | None = None
    """Reserved for WINDOW schedules; an agent that cannot honour a schedule must refuse the command."""
    signature: str | None = None
    """`ed25519:<key id>:<signature>` over the rest of the message (shared/signing.py)."""
    artifact_upload: ArtifactUpload | None = None
    """Present for ARTIFACT_TYPES."""
    start_before: AwareDatetime | None = None
    """The agent does not start the command after this moment (the operation's delivery deadline); it ends FAILED
    instead. Devices need a roughly synchronized clock (NTP) for this to be exact."""


class CommandBatch:
    """Encodes the commands of one operation, which differ only per device: the shared part is validated once, as a
    Command, and each device's payload is then plain JSON (a model per command cost more than publishing it)."""

    def __init__(self, prototype: Command) -> None:
        self._shared = prototype.model_dump(mode="json", exclude_none=True, exclude=_PER_DEVICE)

    def encode(
        self,
        command_id: str,
        device_id: str,
        *,
        start_before: datetime | None = None,
        schedule: dict[str, Any] | None = None,
        artifact_upload: ArtifactUpload | None = None,
    ) -> bytes:
        """One device's command in the canonical form a signature covers (shared/signing), not yet signed."""
        body = {**self._shared, "command_id": command_id, "device_id": device_id}
        if start_before is not None:
            body["start_before"] = _start_text(start_before)
        if schedule is not None:
            body["schedule"] = schedule
        if artifact_upload is not None:
            body["artifact_upload"] = artifact_upload.model_dump(mode="json")
        return canonical(body)


_PER_DEVICE = {"command_id", "device_id", "start_before", "schedule", "artifact_upload", "signature"}


@functools.lru_cache(maxsize=256)
def _start_text(start_before: datetime) -> str:
    """A batch's commands share their deadline (a WINDOW operation's, one per window end): formatted once."""
    return start_before.isoformat().replace("+00:00", "Z")


class CancelRequest(_Message):
    """Controller -> device: stop a command. QoS 1, not retained; the command's retained message is cleared first.

    A queued command ends FAILED with `reason`; a running one is stopped if its handler can be stopped safely (a
    script, a download) and ends FAILED with `reason`, otherwise it runs to its own end.
    """

    command_id: Id
    device_id: Id
    reason: str = Field(min_length=1, max_length=512)
    requested_at: AwareDatetime


class StatusReport(_Message):
    """Device -> controller: the command's status. FAILED carries a reason; SUCCESSFUL may carry a result."""

    command_id: Id
    device_id: Id
    status: DeviceStatus
    timestamp: AwareDatetime
    result: dict[str, Any] | None = None
    failure_reason: str | None = Field(default=None, max_length=4096)
    progress: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _reason_matches_status(self) -> "StatusReport":
        if self.status is DeviceStatus.FAILED and not self.failure_reason:
            raise ValueError("a FAILED status needs a failure_reason")
        if self.status is not DeviceStatus.FAILED and self.failure_reason:
            raise ValueError(f"a {self.status} status cannot carry a failure_reason")
        return self


class Announcement(_Message):
    """Device -> everyone: who the device is and what it can run. Retained, QoS 1."""

    device_id: Id
    platform: Platform
    agent_version: str = Field(min_length=1, max_length=64)
    inventory: dict[str, Any] = Field(default_factory=dict)
    time_zone: AnnouncedZone | None = None
    capabilities: list[OperationType] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    announced_at: AwareDatetime


class AgentHealth(_Message):
    """How the agent itself is doing, in its online presence (refreshed every `health_interval_s`)."""

    reported_at: AwareDatetime
    uptime_s: float = Field(ge=0)
    rss_bytes: int = Field(ge=0)
    queued: int = Field(ge=0, description="Commands waiting for their turn.")
    running: str | None = Field(default=None, description="The command id being executed, if any.")
    undelivered: int = Field(ge=0, description="Final statuses not yet acknowledged by the broker.")


class Presence(_Message):
    """Device -> everyone: online at connect, offline from the last will or a clean stop. Retained, QoS 1."""

    device_id: Id
    state: PresenceState
    health: AgentHealth | None = None


M = TypeVar("M", bound=_Message)


def encode(message: _Message) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def encode_signed(message: _Message, signer: Signer) -> bytes:
    return signer.signed(message.model_dump(mode="json", exclude_none=True))


def decode(model: type[M], payload: bytes) -> M:
    """Parse `payload` as `model`; raise PayloadError with a one-line reason for anything invalid."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        return model.model_validate_json(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        is_id = first["type"] == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == ID_PATTERN.pattern
        reason = f"invalid id {first['input']!r}: {ID_RULE}" if is_id else first["msg"]
        raise PayloadError(f"invalid {model.__name__} ({err.error_count()} errors): {where}: {reason}") from err
