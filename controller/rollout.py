"""Rollout control, pure: how many commands an operation may have dispatched by now, and when it must abort."""

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.store.records import OperationStats


@dataclass(frozen=True, slots=True)
class Rollout:
    rate_per_minute: int | None = None
    """Dispatch at most this many devices per minute (the first one at once); None: all at once."""
    abort_failure_share: float | None = None
    """Abort once more than this share of the finished devices failed; None: never abort."""
    abort_min_finished: int = 10
    """...but only after at least this many devices finished, so one early failure does not abort a fleet."""

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> "Rollout":
        return cls(**stored) if stored else cls()

    def dispatch_budget(self, started_at: datetime, now: datetime, already_dispatched: int) -> int | None:
        """How many more commands may go out now; None means no limit."""
        if self.rate_per_minute is None:
            return None
        elapsed_s = max(0.0, (now - started_at).total_seconds())
        allowed = 1 + math.floor(self.rate_per_minute * elapsed_s / 60)
        return max(0, allowed - already_dispatched)

    def seconds_until_next(self, started_at: datetime, now: datetime, already_dispatched: int) -> float | None:
        """When the budget next grows above zero, if it is zero now; None when it is not limited or not zero."""
        if self.rate_per_minute is None or self.dispatch_budget(started_at, now, already_dispatched):
            return None
        due_s = already_dispatched * 60 / self.rate_per_minute  # the moment the (n+1)-th command may go out
        return max(0.0, due_s - (now - started_at).total_seconds())

    def abort_reason(self, stats: OperationStats) -> str | None:
        """Why the rollout must stop now, or None."""
        if self.abort_failure_share is None:
            return None
        failed = stats.failed_device_count
        finished = failed + stats.success_device_count
        if finished < self.abort_min_finished or failed <= self.abort_failure_share * finished:
            return None
        return (
            f"aborted: {failed} of {finished} finished devices failed, "
            f"more than the abort_failure_share {self.abort_failure_share:g}"
        )
