"""Operation events: read off the store a few times a second, published on MQTT and handed to SSE streams.

The store's activity log is the source of the activity events (every entry, in order, with the state it led to),
and the device counts of unfinished operations are compared with what was last sent for the stats events. Reading
rather than hooking every write keeps the writers unaware of events, and caps the rate: one query per tick, and
only when the database changed.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from controller.counts import device_counts, statistics
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
        self._streams: dict[str, set[asyncio.Queue[OperationEvent | None]]] = {}
        self._activity_seq = store.last_activity_seq()
        """Events start from now: history is in the REST API."""
        self._changes = -1
        self._sent: dict[str, OperationStats] = {}
        """The counts last sent for each unfinished operation."""

    def subscribe(self, operation_id: str) -> asyncio.Queue[OperationEvent | None]:
        """A queue of the operation's events from now on; None in it means the controller is stopping."""
        queue: asyncio.Queue[OperationEvent | None] = asyncio.Queue()
        self._streams.setdefault(operation_id, set()).add(queue)
        return queue

    def unsubscribe(self, operation_id: str, queue: asyncio.Queue[OperationEvent | None]) -> None:
        queues = self._streams.get(operation_id, set())
        queues.discard(queue)
        if not queues:
            self._streams.pop(operation_id, None)

    def snapshot(self, operation_id: str) -> OperationEvent:
        """The operation as it stands; NotFound for an unknown id."""
        operation = self._store.get_operation(operation_id)
        latest = operation.activity[-1] if operation.activity else None
        return _event(
            operation_id, OperationEventKind.SNAPSHOT, operation.state, operation.reason, operation.stats, latest
        )

    def close(self) -> None:
        """End every stream, so that open SSE responses finish and the HTTP server can stop."""
        for queues in self._streams.values():
            for queue in queues:
                queue.put_nowait(None)

    async def run(self) -> None:
        pause = TICK_S
        while True:
            await asyncio.sleep(pause)
            started = time.perf_counter()
            await self.tick()
            # Counting a large operation's devices takes a while (~50 ms for 100,000): keep to a tenth of the loop.
            pause = max(TICK_S, (time.perf_counter() - started) * MAX_BUSY_RATIO)

    async def tick(self) -> list[OperationEvent]:
        changes = self._store.conn.total_changes
        if changes == self._changes:
            return []
        self._changes = changes
        events = self.collect()
        for event in events:
            for queue in self._streams.get(event.operation_id, ()):
                queue.put_nowait(event)
        await self._send(events)
        return events

    def collect(self) -> list[OperationEvent]:
        """The events since the last call: every new activity entry, then changed counts of unfinished operations."""
        entries = []
        while batch := self._store.activity_after(self._activity_seq, ACTIVITY_BATCH):
            entries += batch
            self._activity_seq = batch[-1].entry.seq
        unfinished = self._store.operations_in_states(UNFINISHED)
        stats = self._store.stats_of(sorted(set(unfinished) | {entry.operation_id for entry in entries}))
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
