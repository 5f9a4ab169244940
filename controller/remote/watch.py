"""`tether op watch`: follow an operation's events to its end, reconnecting when the stream drops."""

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from controller.remote.client import RemoteError, TetherClient, Unreachable
from controller.remote.render import counts_line, when
from shared.events import OperationEvent
from shared.operations import OperationState

RECONNECT_FOR_S = 60.0
"""How long a watch keeps trying to get its stream back after losing it (a controller restart, say)."""
LINE_INTERVAL_S = 1.0
"""Without a terminal, the counts are printed at most this often."""
QUEUE_CHECK_S = 10.0
"""While its pending count stays the same, an operation's pending devices are asked about at most this often."""
QUEUE_SAMPLE = 100
"""How many pending devices are asked about: enough to name the operations that hold them up."""
NAMED_DEVICES = 5


def follow(
    client: TetherClient,
    operation_id: str,
    on_event: Callable[[OperationEvent], None],
    on_lost: Callable[[RemoteError], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> OperationEvent:
    """Hand every event to `on_event` and return the one that shows the operation ended.

    The first connection must succeed; after that a lost stream is retried for up to RECONNECT_FOR_S.
    """
    connected_once = False
    lost_since: float | None = None
    backoff = 0.5
    while True:
        try:
            for event in client.operation_events(operation_id):
                connected_once, lost_since, backoff = True, None, 0.5
                on_event(event)
                if event.ended:
                    return event
            error: RemoteError = Unreachable("the event stream closed before the operation ended")
        except Unreachable as err:
            error = err
        if not connected_once:
            raise error
        lost_since = clock() if lost_since is None else lost_since
        if clock() - lost_since > RECONNECT_FOR_S:
            raise RemoteError(f"lost the controller for over {RECONNECT_FOR_S:.0f} s: {error}")
        on_lost(error)
        sleep(backoff)
        backoff = min(backoff * 2, 5.0)


def queued_lines(results: Iterable[dict[str, Any]], said: set[str]) -> list[str]:
    """One line per earlier operation that devices of `results` are queued behind (a device runs its commands in
    order), naming the devices not in `said`, which it then holds."""
    behind: dict[str, list[str]] = {}
    for result in results:
        if result.get("queued_behind") and result["device_id"] not in said:
            behind.setdefault(result["queued_behind"], []).append(result["device_id"])
    lines = []
    for operation_id, devices in behind.items():
        said.update(devices)
        more = len(devices) - NAMED_DEVICES
        named = ", ".join(devices[:NAMED_DEVICES]) + (f" and {more} more" if more > 0 else "")
        lines.append(f"{named} queued behind operation {operation_id}, not finished there yet")
    return lines


class QueueNotes:
    """Which earlier operations the pending devices of a watched operation wait for, each device said once."""

    def __init__(self, client: TetherClient, operation_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._operation_id = operation_id
        self._clock = clock
        self._said: set[str] = set()
        self._pending_then = 0
        self._checked_at = float("-inf")

    def lines(self, event: OperationEvent) -> list[str]:
        pending = event.devices.pending
        if pending == 0 or event.ended:
            return []
        if pending == self._pending_then and self._clock() - self._checked_at < QUEUE_CHECK_S:
            return []
        self._pending_then, self._checked_at = pending, self._clock()
        try:
            pending_devices = self._client.operation_devices(self._operation_id, "PENDING", QUEUE_SAMPLE)
        except RemoteError:  # a hint only: the watch goes on, and the stream says if the controller is gone
            return []
        return queued_lines(pending_devices, self._said)


def succeeded(event: OperationEvent) -> bool:
    """Every device of the operation succeeded (COMPLETED means every device has a final status)."""
    return event.state is OperationState.COMPLETED and event.devices.failed == 0


class NewActivity:
    """Each activity entry once: a reconnected stream starts with a snapshot that repeats the last one shown."""

    def __init__(self) -> None:
        self._shown_seq = -1

    def line(self, event: OperationEvent) -> str | None:
        """The line for the event's activity entry if it is one not shown yet."""
        if event.activity is None or event.activity.seq <= self._shown_seq:
            return None
        self._shown_seq = event.activity.seq
        message = f": {event.activity.message}" if event.activity.message else ""
        return f"{when(event.activity.timestamp)} {event.activity.operation_state}{message}"


class LiveDisplay:
    """A progress bar with per-status counts on a terminal; activity lines scroll above it."""

    def __init__(self, console: Console, errors: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[state]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._activity = NewActivity()
        self._errors = errors

    def __enter__(self) -> "LiveDisplay":
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def event(self, event: OperationEvent) -> None:
        counts = event.devices
        total = counts.waiting + counts.pending + counts.executing + counts.successful + counts.failed
        state = str(event.state)
        summary = (
            f"{counts.successful} ok, {counts.failed} failed, {counts.executing} running, "
            f"{counts.pending} pending, {counts.waiting} waiting"
        )
        if self._task is None:
            self._task = self._progress.add_task("", total=total or None, state=state, counts=summary)
        finished = counts.successful + counts.failed
        self._progress.update(self._task, total=total or None, completed=finished, state=state, counts=summary)
        line = self._activity.line(event)
        if line is not None:
            self.note(line)

    def note(self, line: str) -> None:
        self._progress.console.print(line, highlight=False)

    def lost(self, error: RemoteError) -> None:
        # While the bar is drawn, rich shows what goes to stderr above it, as it does stdout.
        self._errors.print(f"{error}; reconnecting", style="yellow", highlight=False)


class LineDisplay:
    """Plain lines for logs and pipes: each activity, and the counts when they change (at most once a second)."""

    def __init__(self, console: Console, errors: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._errors = errors
        self._activity = NewActivity()
        self._clock = clock
        self._last_counts: str | None = None
        self._printed_at = float("-inf")

    def __enter__(self) -> "LineDisplay":
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def event(self, event: OperationEvent) -> None:
        activity = self._activity.line(event)
        if activity is not None:
            self.note(activity)
        line = f"{event.state}: {counts_line(event.devices)}"
        due = self._clock() - self._printed_at >= LINE_INTERVAL_S
        if line != self._last_counts and due and not event.ended:  # the end gets a summary line of its own
            self._console.print(line, highlight=False)
            self._last_counts, self._printed_at = line, self._clock()

    def note(self, line: str) -> None:
        self._console.print(line, highlight=False)

    def lost(self, error: RemoteError) -> None:
        self._errors.print(f"{error}; reconnecting", highlight=False)
