"""Request and response bodies of the /v0 API, shaped exactly as seed 000 describes them."""

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator

from controller.counts import device_counts, statistics
from controller.store.records import OperationRecord
from shared.events import DeviceCounts, OperationStatsBody
from shared.operations import DeviceStatus, OperationState, OperationType, ScheduleType, TimeType
from shared.schedule import parse_aware
from shared.text import displayable
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, MAX_TIMEOUT_S, MIN_TIMEOUT_S

T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


DATETIME_EXAMPLES = ["2024-08-08T14:30:00Z", "2024-08-08T14:30:00+05:30"]


class ScheduleArgsIn(_Strict):
    # Strings, as seed 000 types them: checked by shared/schedule.py, which names the field, and echoed as sent.
    start_datetime: StrictStr | None = Field(
        default=None, description="ISO 8601 with a UTC offset.", examples=DATETIME_EXAMPLES
    )
    end_datetime: StrictStr | None = Field(
        default=None, description="ISO 8601 with a UTC offset.", examples=DATETIME_EXAMPLES
    )
    time_type: TimeType | None = None
    days: list[str] | None = None
    time_zone: StrictStr | None = Field(
        default=None,
        description="Tether extension: the creator's IANA zone (e.g. Europe/Berlin), which console time reads the "
        "daily window in; the API key's zone when absent, else start_datetime's offset.",
        examples=["Europe/Berlin"],
    )
    window_start_time: None = Field(
        default=None, description="Filled in from start_datetime; it cannot be set in a request."
    )
    window_end_time: None = Field(default=None, description="Filled in from end_datetime; it cannot be set.")

    @field_validator("time_type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        # Seed 000's enum is "console"/"device", but its own description spells them CONSOLE and DEVICE.
        return value.lower() if isinstance(value, str) else value

    @field_validator("start_datetime", "end_datetime")
    @classmethod
    def _aware(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            parse_aware(value, str(info.field_name))
        return value

    @field_validator("window_start_time", "window_end_time", mode="before")
    @classmethod
    def _not_settable(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("is filled in from start_datetime/end_datetime and cannot be set")
        return None


class RolloutIn(_Strict):
    """Tether extension: dispatch gradually, and stop when too many devices fail."""

    rate_per_minute: int | None = Field(default=None, ge=1, le=1_000_000, description="Devices dispatched per minute.")
    abort_failure_share: float | None = Field(
        default=None, gt=0, le=1, description="Abort when more than this share of finished devices failed."
    )
    abort_min_finished: int = Field(default=10, ge=1, description="...once at least this many devices finished.")


class OperationCreate(_Strict):
    operation_type: OperationType
    schedule_type: ScheduleType = ScheduleType.IMMEDIATE
    schedule_args: ScheduleArgsIn | None = None
    operation_device_query: dict[str, Any] = Field(
        description='Selects the target devices; see docs/query-language.md. Send {"all": true} for every device.',
        # Not enforced here: compile_query refuses an empty query with a message that says what to send instead.
        json_schema_extra={"minProperties": 1},
    )
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_s: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_S,
        le=MAX_TIMEOUT_S,
        description="Tether extension: seconds a device may take from EXECUTING to a final status; "
        "the type's default when absent (docs/operations-lifecycle.md).",
    )
    delivery_timeout_s: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_S,
        le=MAX_TIMEOUT_S,
        description="Tether extension: seconds a device may take from dispatch to EXECUTING (it may be offline); "
        f"{DEFAULT_DELIVERY_TIMEOUT_S} when absent.",
    )
    rollout: RolloutIn | None = None


class ActivityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    operation_state: str
    timestamp: str
    message: str | None


class OperationOut(BaseModel):
    id: str
    operation: OperationType
    state: OperationState
    schedule_type: ScheduleType
    schedule_args: dict[str, Any] | None
    operation_device_query: dict[str, Any]
    arguments: dict[str, Any]
    reason: str | None
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str
    operation_activity: list[ActivityOut]
    operation_stats: OperationStatsBody
    devices: DeviceCounts
    """Tether extension: how many devices are waiting, pending, executing, successful and failed."""
    timeout_s: int
    delivery_timeout_s: int
    rollout: dict[str, Any] | None
    next_dispatch_at: str | None
    """While devices wait for their WINDOW to open: the earliest opening."""

    @classmethod
    def of(cls, record: OperationRecord) -> "OperationOut":
        return cls(
            id=record.id,
            operation=record.operation_type,
            state=record.state,
            schedule_type=record.schedule_type,
            schedule_args=record.schedule_args,
            # What an older version stored may hold text UTF-8 cannot encode: shown with U+FFFD, never a 500.
            operation_device_query=displayable(record.device_query),
            arguments=displayable(record.arguments),
            reason=record.reason,
            created_at=record.created_at,
            created_by=record.created_by,
            updated_at=record.updated_at,
            updated_by=record.updated_by,
            operation_activity=[ActivityOut.model_validate(entry) for entry in record.activity],
            operation_stats=statistics(record.stats),
            devices=device_counts(record.stats),
            timeout_s=record.timeout_s,
            delivery_timeout_s=record.delivery_timeout_s,
            rollout=record.rollout,
            next_dispatch_at=record.next_dispatch_at,
        )


class DeviceOperationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    command_id: str
    status: DeviceStatus
    dispatch_state: str
    created_at: str
    dispatched_at: str | None
    received_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str
    result: dict[str, Any] | None
    failure_reason: str | None
    progress: int | None
    not_before: str | None
    deadline_at: str | None
    queued_behind: str | None = Field(
        default=None,
        description="Extension: for a device that has its command and has not started it, the id of the operation "
        "whose earlier command it has not finished yet and runs first (a device runs its commands in order).",
    )


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    platform: str | None
    agent_version: str | None
    online: bool
    time_zone: str | None
    tags: list[str]
    groups: list[str]
    capabilities: list[str]
    inventory: dict[str, Any]
    first_seen: str
    last_seen: str
    presence_changed_at: str | None


class Envelope(BaseModel, Generic[T]):
    """Every /v0 response wraps its body in `content`, as seed 000's 201 response does."""

    content: T


class PageOut(BaseModel, Generic[T]):
    count: int
    next: str | None
    previous: str | None
    results: list[T]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    message: str
    errors: list[FieldError] = Field(default_factory=list)
