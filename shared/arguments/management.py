"""Arguments of the operation types that manage the agent itself."""

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from shared.messages import TimeZone


class ConvergeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    converge_with_provision: bool = False
    """Also re-run provisioning (seed 000's example argument)."""
    sample_key: StrictStr | None = None
    """Seed 000 lists this string beside converge_with_provision without giving it a meaning: accepted and carried
    with the command so that the seed's requests work unchanged, and not used by the agent."""


class CustomActionArguments(BaseModel):
    """RUN_CUSTOM_ACTION: run the action the agent's config defines under `action`, filling in `parameters`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    parameters: dict[str, StrictStr | StrictInt | StrictFloat | StrictBool] = Field(default_factory=dict)


Label = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")]
"""A tag or group name: what operation queries select devices by."""


class DeviceConfigArguments(BaseModel):
    """UPDATE_DEVICE_CONFIG: replace the device's tags, groups or time zone, which its agent config set until now.

    A field left out keeps its value; `reset` first drops every earlier change, back to the config file's values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[Label] | None = Field(default=None, max_length=64)
    groups: list[Label] | None = Field(default=None, max_length=64)
    time_zone: TimeZone | None = None
    reset: bool = False

    @model_validator(mode="after")
    def _changes_something(self) -> "DeviceConfigArguments":
        if not self.reset and self.tags is None and self.groups is None and self.time_zone is None:
            raise ValueError("give at least one of tags, groups, time_zone or reset")
        return self
