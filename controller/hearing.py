"""How far to move deadlines when the controller could not hear devices: pure, for the supervisor.

A deadline counts only time during which the controller was connected to its broker (docs/operations-lifecycle.md).
"""

from datetime import datetime

RECONNECT_GRACE_S = 10.0
"""Added on every reconnect: the broker then delivers what it kept for the controller, which is stored before a
deadline the outage pushed right up to that moment may pass."""
STALL_S = 3.0
"""Of a gap between two connected ticks (one a second), what goes past this, a stalled loop or a clock that jumped
ahead, counts as time the controller could not hear either. Only the excess: had a stall's whole gap counted, a loop
stalled for more than this at every tick moved every deadline as far as time went, and none ever passed."""


def postponement(last_heard: datetime | None, now: datetime, *, reconnected: bool) -> float:
    """Seconds to move every unfinished command's deadline, at a tick where the controller is connected.

    `last_heard` is the previous such tick (None if there never was one); `reconnected`, whether the connection was
    made again since it, by a new link or a new controller process.
    """
    gap = 0.0 if last_heard is None else max(0.0, (now - last_heard).total_seconds())
    if reconnected:
        return gap + RECONNECT_GRACE_S
    return max(0.0, gap - STALL_S)
