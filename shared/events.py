"""Operation events: what the controller tells integrations about a whole operation, on MQTT and as SSE.

Every event is a complete picture of the operation at that moment (state, counts, the activity entry that caused
it, if any), so a consumer that missed some can act on the latest alone.
"""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.lifecycle import is_terminal_operation
from shared.operations import OperationState


class OperationEventKind(StrEnum):
    SNAPSHOT = "snapshot"
    """The operation as it stands, sent first on every SSE stream."""
    ACTIVITY = "activity"
    """An entry was added to `operation_activity`: the operation changed state, or reached a step."""
    STATS = "stats"
    """Device counts changed; sent at most a few times a second per operation."""


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DeviceOperationStatusesCount(_Event):
    """The counts of seed 000's `operation_stats.device_operation_statuses_count`."""

    resolved_device_count: int
    dispatched_device_count: int
    dispatch_failed_count: int
    failed_device_count: int
    success_device_count: int


class OperationStatsBody(_Event):
    device_operation_statuses_count: DeviceOperationStatusesCount


class DeviceCounts(_Event):
    """How many devices of the operation are in each status; they add up to `resolved_device_count`."""

    waiting: int = Field(description="Not dispatched yet: a paced rollout or a closed window holds them back.")
    pending: int = Field(description="Dispatched, not started: queued on the device, or the device is offline.")
    executing: int
    successful: int
    failed: int = Field(description="Including devices that could not be dispatched to.")


class ActivityBody(_Event):
    seq: int = Field(description="The entry's place in the controller's activity log: later entries, larger numbers.")
    operation_state: str
    timestamp: str
    message: str | None = None


class OperationEvent(_Event):
    """Published QoS 1, not retained, on `<prefix>/operations/<operation_id>/events`; also `GET .../events`."""

    operation_id: str
    event: OperationEventKind
    at: AwareDatetime
    state: OperationState
    """For an activity event, the state the operation reached with that entry; otherwise its state now."""
    reason: str | None = None
    activity: ActivityBody | None = None
    operation_stats: OperationStatsBody
    devices: DeviceCounts

    @property
    def ended(self) -> bool:
        return is_terminal_operation(self.state)
