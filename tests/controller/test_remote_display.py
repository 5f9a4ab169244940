"""What `tether op watch` prints: a live bar on a terminal, throttled plain lines elsewhere."""

import io

from rich.console import Console

from controller.remote.client import Unreachable
from controller.remote.render import PlainConsole, device_results_table
from controller.remote.watch import LineDisplay, LiveDisplay, queued_lines, succeeded
from shared.events import OperationEvent


def event(kind: str, state: str, activity: str | None = None, seq: int = 1, **counts: int) -> OperationEvent:
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
            else {"seq": seq, "operation_state": activity, "timestamp": "2026-12-01T10:00:00.123Z", "message": "m"},
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
    display = LineDisplay(Console(file=out, width=200), Console(file=io.StringIO()), clock=clock)

    display.event(event("snapshot", "DISPATCHING", "DISPATCHED", pending=3))
    display.event(event("stats", "DISPATCHING", executing=3))  # within the second: held back
    clock.now = 1.5
    display.event(event("stats", "DISPATCHING", executing=1, successful=2))
    display.event(event("activity", "COMPLETED", "SUCCESS", seq=2, successful=3))  # the end: the caller sums up

    assert out.getvalue().splitlines() == [
        "2026-12-01 10:00:00 DISPATCHED: m",
        "DISPATCHING: 0 successful, 0 failed, 0 executing, 3 pending, 0 waiting of 3 device(s)",
        "DISPATCHING: 2 successful, 0 failed, 1 executing, 0 pending, 0 waiting of 3 device(s)",
        "2026-12-01 10:00:00 SUCCESS: m",
    ]


def test_a_terminal_gets_a_bar_with_the_counts() -> None:
    out = io.StringIO()
    with LiveDisplay(Console(file=out, force_terminal=True, width=150), Console(file=io.StringIO())) as display:
        display.event(event("stats", "DISPATCHING", executing=1, successful=3, failed=1, waiting=5))
    screen = out.getvalue()
    assert "4/10" in screen
    assert "3 ok, 1 failed, 1 running, 0 pending, 5 waiting" in screen
    assert "DISPATCHING" in screen


def test_only_a_completed_operation_without_failures_succeeded() -> None:
    assert succeeded(event("activity", "COMPLETED", "SUCCESS", successful=3))
    assert not succeeded(event("activity", "COMPLETED", "FAILURE", successful=2, failed=1))
    assert not succeeded(event("activity", "FAILED", "FAILURE", successful=3))


def test_a_reconnected_stream_does_not_repeat_the_last_activity_and_reconnecting_goes_to_stderr() -> None:
    out, errors = io.StringIO(), io.StringIO()
    display = LineDisplay(Console(file=out, width=200), Console(file=errors, width=200), clock=Clock())

    display.event(event("activity", "DISPATCHING", "PROCESSING", seq=4, executing=1))
    display.lost(Unreachable("the event stream closed before the operation ended"))
    display.event(event("snapshot", "DISPATCHING", "PROCESSING", seq=4, executing=1))  # the reconnected stream's
    display.event(event("activity", "COMPLETED", "SUCCESS", seq=5, successful=1))

    assert out.getvalue().splitlines() == [
        "2026-12-01 10:00:00 PROCESSING: m",
        "DISPATCHING: 0 successful, 0 failed, 1 executing, 0 pending, 0 waiting of 1 device(s)",
        "2026-12-01 10:00:00 SUCCESS: m",
    ]
    assert errors.getvalue() == "the event stream closed before the operation ended; reconnecting\n"


def test_pending_devices_are_named_once_under_the_operation_they_are_queued_behind() -> None:
    said: set[str] = set()
    first = [
        {"device_id": "k1", "queued_behind": "op-a"},
        {"device_id": "k2", "queued_behind": None},
        {"device_id": "k3", "queued_behind": "op-b"},
        {"device_id": "k4", "queued_behind": "op-a"},
    ]
    assert queued_lines(first, said) == [
        "k1, k4 queued behind operation op-a, not finished there yet",
        "k3 queued behind operation op-b, not finished there yet",
    ]
    assert queued_lines(first, said) == []  # said once
    many = [{"device_id": f"d{n}", "queued_behind": "op-c"} for n in range(7)]
    assert queued_lines([*first, *many], said) == [
        "d0, d1, d2, d3, d4 and 2 more queued behind operation op-c, not finished there yet"
    ]


def test_a_failure_reason_written_over_several_lines_is_one_row_in_a_pipe() -> None:
    out = io.StringIO()
    console = PlainConsole(file=out, width=400, color_system=None)
    failed = {
        "device_id": "c1",
        "status": "FAILED",
        "started_at": "2026-12-01T10:00:00.000Z",
        "finished_at": "2026-12-01T10:00:01.000Z",
        "failure_reason": "apt-get failed:\nE: Unable to locate package tool\r\n  E: second",
        "result": None,
    }
    console.print(device_results_table([failed], detail_width=None))
    rows = out.getvalue().splitlines()
    assert len(rows) == 2, rows
    assert rows[1].rstrip().endswith("apt-get failed: E: Unable to locate package tool E: second")
