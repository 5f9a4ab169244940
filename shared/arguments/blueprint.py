"""UPDATE_BLUEPRINT: a configuration profile, that is an ordered list of settings operations applied as one command."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.operations import OperationType

STEP_TYPES = frozenset(
    {
        OperationType.SET_WIFI_STATE,
        OperationType.ADD_WIFI_AP,
        OperationType.REMOVE_WIFI_AP,
        OperationType.SET_BLUETOOTH_STATE,
        OperationType.SET_ETHERNET_SETTINGS,
        OperationType.SET_STATIC_IP,
        OperationType.SET_TIMEZONE,
        OperationType.SET_DEVICE_LANGUAGE,
        OperationType.SET_BRIGHTNESS_SCALE,
        OperationType.SET_SCREEN_OFF_TIMEOUT,
        OperationType.SET_STREAM_VOLUME,
        OperationType.SET_ROTATION_STATE,
        OperationType.SET_GPS_STATE,
        OperationType.SET_LOCATION_SERVICE,
        OperationType.SET_APP_PERMISSION,
        OperationType.SET_APP_STATE,
        OperationType.INSTALL,
        OperationType.INSTALL_APP,
        OperationType.UNINSTALL,
        OperationType.UNINSTALL_APP,
        OperationType.INSTALL_CERTIFICATE,
        OperationType.UNINSTALL_CERTIFICATE,
        OperationType.SYNC_CONTENT,
        OperationType.UPDATE_DEVICE_CONFIG,
    }
)
"""Settings a profile may hold: each leaves the device running and reachable, and means the same when applied twice.
Not: power, destructive, artifact and lost-mode types, scripts and custom actions (send those as their own
operations), and UPDATE_BLUEPRINT itself."""


class BlueprintStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operation_type: OperationType
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _a_valid_setting(self) -> "BlueprintStep":
        if self.operation_type not in STEP_TYPES:
            raise ValueError(
                f"{self.operation_type} cannot be a blueprint step; steps are: {', '.join(sorted(STEP_TYPES))}"
            )
        from shared.arguments import validate_arguments  # the table of every type's model imports this module

        validate_arguments(self.operation_type, self.arguments)
        return self


class BlueprintArguments(BaseModel):
    """The steps run in order and stop at the first that fails; each is checked as its own operation would be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")
    steps: list[BlueprintStep] = Field(min_length=1, max_length=50)
