"""Arguments of the operation types that manage the agent itself."""

from pydantic import BaseModel, ConfigDict


class ConvergeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    converge_with_provision: bool = False
    """Also re-run provisioning (seed 000's example argument)."""
