"""What `tether op watch` prints: a live bar on a terminal, throttled plain lines elsewhere."""

import io

from rich.console import Console

from controller.remote.watch import LineDisplay, LiveDisplay, succeeded
from shared.events import OperationEvent


def event(kind: str, state: str, activity: str | None = None, **counts: int) -> OperationEvent:
    devices = {"waiting": 0, "pending": 0, "executing": 0, "successful": 0, "failed": 0, **counts}
    statuses = {
        "resolved_device_count": sum(devices.values()),
        "dispatched_device_count": sum(devices.values()) - devices["waiting"],
        "dispatch_failed_count": 0,
        "failed_device_count": devices["failed"],
        "success_device_count": devices["successful"],
    }
    return OperationEvent.model_validate(
        {
            "operation_id": "op-1",
            "event": kind,
            "at": "2026-12-01T10:00:00Z",
            "state": state,
            "activity": None
            if activity is None
            else {"seq": 1, "operation_state": activity, "timestamp": "2026-12-01T10:00:00.123Z", "message": "m"},
            "operation_stats": {"device_operation_statuses_count": statuses},
            "devices": devices,
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_show_each_activity_and_the_counts_at_most_once_a_second() -> None:
    out = io.StringIO()
    clock = Clock()
    display = LineDisplay(Console(file=out, width=200), clock=clock)

    display.event(event("snapshot", "DISPATCHING", "DISPATCHED", pending=3))
    display.event(event("stats", "DISPATCHING", executing=3))  # within the second: held back
    clock.now = 1.5
    display.event(event("stats", "DISPATCHING", executing=1, successful=2))
    display.event(event("activity", "COMPLETED", "SUCCESS", successful=3))  # the end: the caller sums up

    assert out.getvalue().splitlines() == [
        "2026-12-01 10:00:00 DISPATCHED: m",
        "DISPATCHING: 0 successful, 0 failed, 0 executing, 3 pending, 0 waiting of 3 device(s)",
        "DISPATCHING: 2 successful, 0 failed, 1 executing, 0 pending, 0 waiting of 3 device(s)",
        "2026-12-01 10:00:00 SUCCESS: m",
    ]


def test_a_terminal_gets_a_bar_with_the_counts() -> None:
    out = io.StringIO()
    with LiveDisplay(Console(file=out, force_terminal=True, width=150)) as display:
        display.event(event("stats", "DISPATCHING", executing=1, successful=3, failed=1, waiting=5))
    screen = out.getvalue()
    assert "4/10" in screen
    assert "3 ok, 1 failed, 1 running, 0 pending, 5 waiting" in screen
    assert "DISPATCHING" in screen


def test_only_a_completed_operation_without_failures_succeeded() -> None:
    assert succeeded(event("activity", "COMPLETED", "SUCCESS", successful=3))
    assert not succeeded(event("activity", "COMPLETED", "FAILURE", successful=2, failed=1))
    assert not succeeded(event("activity", "FAILED", "FAILURE", successful=3))
