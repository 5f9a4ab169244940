"""Arguments of REMOTE_CONNECTION: open the device's reverse SSH tunnel for a while, or close it.

The bastion, its account and its key live in the agent's config only: a command cannot point the tunnel elsewhere.
"""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

MIN_DURATION_S = 60
MAX_DURATION_S = 4 * 3600


class RemoteConnectionArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: int | None = Field(default=None, ge=MIN_DURATION_S, le=MAX_DURATION_S)
    """How long the tunnel stays open at most; systemd stops it then."""
    close: StrictBool = False

    @model_validator(mode="after")
    def _open_or_close(self) -> Self:
        if self.close and self.duration_s is not None:
            raise ValueError("`duration_s` only goes with opening, not with `close: true`")
        if not self.close and self.duration_s is None:
            raise ValueError("give `duration_s` to open the tunnel, or `close: true`")
        return self
