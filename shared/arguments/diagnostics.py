"""Arguments of the operation types whose result is a file: screenshots, logs and bug reports."""

from pydantic import BaseModel, ConfigDict, Field


class LogsArguments(BaseModel):
    """COLLECT_LOGS (the system log) and REQUEST_DPCLOG (the agent's own log): the last `since_minutes`, at most
    `max_lines` lines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    max_lines: int = Field(default=10_000, ge=1, le=1_000_000)
