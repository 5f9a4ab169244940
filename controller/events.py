"""Operation events: read off the store a few times a second, published on MQTT and handed to SSE streams.

The store's activity log is the source of the activity events (every entry, in order, with the state it led to),
and the device counts of unfinished operations are compared with what was last sent for the stats events. Reading
rather than hooking every write keeps the writers unaware of events, and caps the rate: one query per tick, and
only when the database changed. The hub runs on the main loop; SSE streams subscribe from the REST API's thread and
get their events through their own loop.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

from controller.counts import device_counts, statistics
from controller.errors import StorageUnavailable
from controller.fastmqtt.client import ConnectionLost
from controller.store import Store
from controller.store.records import ActivityEntry, OperationStats
from shared.events import ActivityBody, OperationEvent, OperationEventKind
from shared.messages import utc_now
from shared.operations import OperationState
from shared.topics import Topics

log = logging.getLogger(__name__)

TICK_S = 0.25
MAX_BUSY_RATIO = 9
"""Sleep at least nine times as long as a tick took."""
ACTIVITY_BATCH = 1000
UNFINISHED = (OperationState.CREATED, OperationState.RESOLVING, OperationState.RESOLVED, OperationState.DISPATCHING)

Publish = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]


MAX_QUEUED = 256
"""Events a stream may fall behind by before it is dropped: an operation makes a few a second (a stats event a tick
and its activity entries), so only a client that stopped reading gets there, and it then holds no more than this."""


class Subscription:
    """One SSE stream's events, on the loop that reads them. None in the queue means the controller is stopping;
    `dropped` is set when the stream fell MAX_QUEUED events behind, and then gets no more."""

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self.queue: asyncio.Queue[OperationEvent | None] = asyncio.Queue(MAX_QUEUED)
        self.dropped = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def offer(self, item: OperationEvent | None) -> None:
        """Runs on the subscription's loop."""
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped.set()


def snapshot(store: Store, operation_id: str) -> OperationEvent:
    """The operation as it stands, read through the caller's store; NotFound for an unknown id."""
    operation = store.operations.get(operation_id)
    latest = operation.activity[-1] if operation.activity else None
    return _event(operation_id, OperationEventKind.SNAPSHOT, operation.state, operation.reason, operation.stats, latest)


def _deliver(subscription: Subscription, item: OperationEvent | None) -> None:
    with contextlib.suppress(RuntimeError):  # that loop is closed: its stream has ended
        subscription.loop.call_soon_threadsafe(subscription.offer, item)


def _event(
    operation_id: str,
    kind: OperationEventKind,
    state: OperationState,
    reason: str | None,
    stats: OperationStats,
    entry: ActivityEntry | None = None,
) -> OperationEvent:
    activity = None
    if entry is not None:
        activity = ActivityBody(
            seq=entry.seq, operation_state=entry.operation_state, timestamp=entry.timestamp, message=entry.message
        )
    return OperationEvent(
        operation_id=operation_id,
        event=kind,
        at=utc_now(),
        state=state,
        reason=reason,
        activity=activity,
        operation_stats=statistics(stats),
        devices=device_counts(stats),
    )


class OperationEvents:
    def __init__(self, store: Store, topics: Topics, publish: Publish | None) -> None:
        self._store = store
        self._topics = topics
        self._publish = publish
        self._streams: dict[str, set[Subscription]] = {}
        self._streams_lock = threading.Lock()
        self._activity_seq = store.operations.last_activity_seq()
        """Events start from now: history is in the REST API."""
        self._changes: object = None
        self._sent: dict[str, OperationStats] = {}
        """The counts last sent for each unfinished operation."""

    def subscribe(self, operation_id: str) -> Subscription:
        """The operation's events from now on, for the running loop."""
        subscription = Subscription(operation_id)
        with self._streams_lock:
            self._streams.setdefault(operation_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._streams_lock:
            streams = self._streams.get(subscription.operation_id, set())
            streams.discard(subscription)
            if not streams:
                self._streams.pop(subscription.operation_id, None)

    def close(self) -> None:
        """End every stream, so that open SSE responses finish and the HTTP server can stop."""
        for stream in self._subscribers(None):
            _deliver(stream, None)

    def _subscribers(self, operation_id: str | None) -> list[Subscription]:
        """The streams of one operation, or of every operation for None."""
        with self._streams_lock:
            if operation_id is None:
                return [stream for streams in self._streams.values() for stream in streams]
            return list(self._streams.get(operation_id, ()))

    async def run(self) -> None:
        pause = TICK_S
        while True:
            await asyncio.sleep(pause)
            started = time.perf_counter()
            # A database that cannot be read is logged where it failed; the streams resume from here once it is back.
            with contextlib.suppress(StorageUnavailable):
                await self.tick()
            # Counting a large operation's devices takes a while (~50 ms for 100,000): keep to a tenth of the loop.
            pause = max(TICK_S, (time.perf_counter() - started) * MAX_BUSY_RATIO)

    async def tick(self) -> list[OperationEvent]:
        changes = self._store.change_token()
        if changes == self._changes:
            return []
        self._changes = changes
        events = self.collect()
        for event in events:
            for stream in self._subscribers(event.operation_id):
                _deliver(stream, event)
        await self._send(events)
        return events

    def collect(self) -> list[OperationEvent]:
        """The events since the last call: every new activity entry, then changed counts of unfinished operations."""
        entries = []
        while batch := self._store.operations.activity_after(self._activity_seq, ACTIVITY_BATCH):
            entries += batch
            self._activity_seq = batch[-1].entry.seq
        unfinished = self._store.operations.in_states(UNFINISHED)
        stats = self._store.operations.stats_of(sorted(set(unfinished) | {entry.operation_id for entry in entries}))
        events = []
        for logged in entries:
            counts = stats.get(logged.operation_id, OperationStats())
            kind = OperationEventKind.ACTIVITY
            events.append(_event(logged.operation_id, kind, logged.state, logged.reason, counts, logged.entry))
            self._sent[logged.operation_id] = counts
        for operation_id, (state, reason) in unfinished.items():
            counts = stats.get(operation_id, OperationStats())
            if self._sent.get(operation_id) != counts:
                events.append(_event(operation_id, OperationEventKind.STATS, state, reason, counts))
                self._sent[operation_id] = counts
        self._sent = {
            operation_id: self._sent[operation_id] for operation_id in unfinished if operation_id in self._sent
        }
        return events

    async def _send(self, events: list[OperationEvent]) -> None:
        if self._publish is None or not events:
            return
        messages = [(self._topics.operation_events(e.operation_id), e.model_dump_json().encode()) for e in events]
        try:
            await self._publish(messages)
        except ConnectionLost as err:
            # Events are notifications: the operation itself is in the store, and the REST API has it.
            log.warning("dropped %d operation event(s): %s", len(messages), err)
