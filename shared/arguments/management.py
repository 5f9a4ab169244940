"""Arguments of the operation types that manage the agent itself."""

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr


class ConvergeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    converge_with_provision: bool = False
    """Also re-run provisioning (seed 000's example argument)."""


class CustomActionArguments(BaseModel):
    """RUN_CUSTOM_ACTION: run the action the agent's config defines under `action`, filling in `parameters`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    parameters: dict[str, StrictStr | StrictInt | StrictFloat | StrictBool] = Field(default_factory=dict)
