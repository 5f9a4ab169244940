"""Plain records the store returns: frozen dataclasses, no SQL and no JSON left in them."""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.operations import DeviceStatus, OperationState, OperationType, ScheduleType
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, DEFAULT_TIMEOUT_S

SYSTEM_ACTOR = "tether"
"""`updated_by` for transitions the controller makes on its own."""


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    seq: int
    """Its place in the activity log of every operation: later entries have larger numbers."""
    operation_state: str
    timestamp: str
    message: str | None


@dataclass(frozen=True, slots=True)
class LoggedActivity:
    """One entry of the activity log with the operation's state once it was written."""

    operation_id: str
    entry: ActivityEntry
    state: OperationState
    reason: str | None
    """The operation's reason now."""


@dataclass(frozen=True, slots=True)
class OperationStats:
    resolved_device_count: int = 0
    dispatched_device_count: int = 0
    dispatch_failed_count: int = 0
    failed_device_count: int = 0
    success_device_count: int = 0
    unfinished_device_count: int = 0
    """Devices whose command has no final status yet; not part of the Esper counts, used to detect completion."""
    waiting_device_count: int = 0
    """Not dispatched yet (paced rollout, closed window). This and the next two make up the unfinished devices."""
    pending_device_count: int = 0
    """Dispatched, not started: queued on the device, or the device is offline."""
    executing_device_count: int = 0


@dataclass(frozen=True, slots=True)
class OperationRecord:
    id: str
    operation_type: OperationType
    state: OperationState
    schedule_type: ScheduleType
    schedule_args: dict[str, Any] | None
    device_query: dict[str, Any]
    arguments: dict[str, Any]
    reason: str | None
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str
    activity: tuple[ActivityEntry, ...] = ()
    stats: OperationStats = OperationStats()
    timeout_s: int = DEFAULT_TIMEOUT_S
    """Per device, from EXECUTING to a final status."""
    delivery_timeout_s: int = DEFAULT_DELIVERY_TIMEOUT_S
    """Per device, from dispatch to EXECUTING."""
    rollout: dict[str, Any] | None = None
    stop_reason: str | None = None
    """Set once the operation is cancelled or aborted: no more dispatching, and it ends FAILED with this reason."""
    dispatch_started_at: str | None = None
    next_dispatch_at: str | None = None
    """The earliest window opening among devices still waiting for theirs."""


@dataclass(frozen=True, slots=True)
class DeviceOperationRecord:
    command_id: str
    operation_id: str
    device_id: str
    status: DeviceStatus
    dispatch_state: str
    """`waiting`, `dispatched` or `failed`: whether the retained command reached the broker; `skipped` when a
    /devicecontrol client set a final status before it was dispatched."""
    created_at: str
    dispatched_at: str | None
    received_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str
    result: dict[str, Any] | None
    failure_reason: str | None
    progress: int | None
    not_before: str | None = None
    """A WINDOW operation's first opening for this device, in its time zone."""
    deadline_at: str | None = None
    """When the device ends FAILED unless it has reported (see docs/operations-lifecycle.md)."""
    queued_behind: str | None = None
    """For a command sent and not started: the operation of an earlier unfinished command the device runs first."""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    platform: str | None
    agent_version: str | None
    online: bool
    time_zone: str | None
    inventory: dict[str, Any]
    capabilities: list[str]
    tags: list[str]
    groups: list[str]
    first_seen: str
    last_seen: str
    presence_changed_at: str | None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    name: str
    role: str
    created_at: str
    time_zone: str | None = None
    """The IANA zone of the key's holder: what console-time schedules it creates are read in."""


@dataclass(frozen=True, slots=True)
class FleetSigningKey:
    """A signing key the fleet has been given: its agents may trust it (`trusted_keys`)."""

    key_id: str
    public_key: str
    """`ed25519:<base64>`."""
    recorded_at: str


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What /metrics reports of the store."""

    operations_by_state: dict[str, int]
    unfinished_commands: dict[str, int]
    """waiting, pending and executing commands of operations that have not ended."""
    devices: int
    online: int
