"""Arguments of the automatic OS update types (PAUSE_OS_UPDATES, SET_OS_UPDATE_POLICY)."""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from shared.arguments.network import switch_word

MAX_PAUSE_DAYS = 90

ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
"""HH:MM on the device's clock, in its time zone."""


class PauseOsUpdatesArguments(BaseModel):
    """PAUSE_OS_UPDATES: stop automatic updates, for good or until a time; `paused: false` resumes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paused: StrictBool
    until: AwareDatetime | None = None
    """When the pause ends by itself (with its UTC offset); at most MAX_PAUSE_DAYS ahead when the device runs it."""
    days: int | None = Field(default=None, ge=1, le=MAX_PAUSE_DAYS)
    """The pause ends this many days after the device runs the command (instead of `until`)."""

    _words = field_validator("paused", mode="before")(switch_word)

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if self.until is not None and self.days is not None:
            raise ValueError("give `until` or `days`, not both")
        if not self.paused and (self.until is not None or self.days is not None):
            raise ValueError("`until` and `days` only go with `paused: true`")
        return self


class UpdatePolicy(StrEnum):
    AUTOMATIC = "automatic"
    """The distribution's own schedule (daily around 06:00)."""
    WINDOWED = "windowed"
    """Updates start at a random time between `window_start` and `window_end` every day."""
    MANUAL = "manual"
    """No automatic updates: the timer is disabled and, with apt, unattended-upgrades is switched off."""


class OsUpdatePolicyArguments(BaseModel):
    """SET_OS_UPDATE_POLICY. Android's "postpone" is PAUSE_OS_UPDATES here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: UpdatePolicy
    window_start: ClockTime | None = None
    window_end: ClockTime | None = None
    """The end of the window in which an update may start; before `window_start` means the next day."""
    reboot: StrictBool = False
    """Reboot right after an update that needs it (unattended-upgrades' Automatic-Reboot; apt only)."""

    @model_validator(mode="after")
    def _window(self) -> Self:
        windowed = self.policy is UpdatePolicy.WINDOWED
        given = (self.window_start is not None, self.window_end is not None)
        if windowed and given != (True, True):
            raise ValueError("the windowed policy needs `window_start` and `window_end`")
        if not windowed and any(given):
            raise ValueError("`window_start` and `window_end` only go with the windowed policy")
        if windowed and self.window_start == self.window_end:
            raise ValueError("the window is empty: `window_end` must differ from `window_start`")
        if self.policy is UpdatePolicy.MANUAL and self.reboot:
            raise ValueError("`reboot` only goes with automatic updates")
        return self

    def window_minutes(self) -> tuple[int, int] | None:
        """The window as (its start in minutes after midnight, its length in minutes), or None."""
        if self.window_start is None or self.window_end is None:
            return None
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (self.window_start, self.window_end))
        return start, (end - start) % (24 * 60)
