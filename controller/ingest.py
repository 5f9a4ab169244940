"""Takes in what devices publish, statuses, announcements and presence, in batches stored a few statements each."""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from controller.completion import finish_if_done
from controller.dispatcher import REPORTING, Dispatcher
from controller.errors import StorageUnavailable
from controller.fastmqtt.client import ConnectionLost
from controller.fastmqtt.codec import Publish
from controller.metrics import Metrics
from controller.mqtt_link import MqttLink
from controller.scheduler import follow_moved_devices
from controller.store import Store
from controller.store.commands import IngestOutcome
from controller.store_thread import StoreThread
from shared.errors import TetherProtocolError
from shared.messages import Announcement, Presence, StatusReport, decode
from shared.operations import TERMINAL_DEVICE_STATUSES, ActivityState, PresenceState
from shared.topics import TopicKind, Topics

log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Rows a transaction changes (commands, devices): a POST waiting for the write lock waits for one batch at most
(~10 ms at this size). A command's PENDING, EXECUTING and final status change its row once when one batch holds
them all, so a batch takes messages until it would change this many rows, or holds MAX_BATCH_MESSAGES."""
MAX_BATCH_MESSAGES = 4 * MAX_BATCH
HIGH_WATER = 10 * MAX_BATCH
LOW_WATER = 4 * MAX_BATCH
"""Received messages waiting to be stored at which reading pauses, and resumes. The broker does not hold back
what it sends a subscriber (a persistent session's backlog, retained messages): without a pause, 100,000 devices
registering left 160,000 decoded messages waiting here, and the controller at 300 MB."""


FULL_RETRY_FIRST_S = 0.25
FULL_RETRY_MAX_S = 2.0
"""How soon a batch that found the disk full is tried again, doubling up to the most: storing resumes within two
seconds of space returning."""

T = TypeVar("T")

Received = tuple[str, StatusReport | Announcement | Presence, Publish]
"""(the topic's device id, the decoded payload, the message to acknowledge once it is stored)."""


class Ingest:
    def __init__(
        self,
        writes: StoreThread,
        topics: Topics,
        dispatcher: Dispatcher,
        link: MqttLink,
        metrics: Metrics | None = None,
    ) -> None:
        self._writes = writes
        self._metrics = metrics or Metrics()
        self._topics = topics
        self._dispatcher = dispatcher
        self._link = link
        self._paused = False
        self._waiting: deque[Received] = deque()
        self._arrived = asyncio.Event()
        """Set while anything waits: a deque and an event cost a fifth of what an asyncio.Queue did a message."""

    def on_message(self, message: Publish) -> bool:
        """Queue one message to store; anything malformed or foreign is logged and skipped, never raised.

        Returns False for a message to store, which is acknowledged only once it is stored; True otherwise.
        """
        received = parse_received(self._topics, message)
        if received is None:
            return True
        self._waiting.append(received)
        self._arrived.set()
        if not self._paused and len(self._waiting) >= HIGH_WATER:
            self._paused = True
            self._link.pause_reading()
        return False

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            batch = take_batch(self._waiting)
            if not self._waiting:
                self._arrived.clear()
            if self._paused and len(self._waiting) <= LOW_WATER:
                self._paused = False
                self._link.resume_reading()
            await self._apply(batch)

    async def _apply(self, batch: list[Received]) -> None:
        """Store a batch on the store's thread, in a few statements; then acknowledge every message."""
        statuses: list[tuple[str, StatusReport]] = []
        announcements: list[Announcement] = []
        presences: list[tuple[str, PresenceState]] = []
        for device_id, item, _ in batch:  # one pass: a batch holds up to MAX_BATCH_MESSAGES
            if isinstance(item, StatusReport):
                statuses.append((device_id, item))
            elif isinstance(item, Announcement):
                announcements.append(item)
            else:
                presences.append((item.device_id, item.state))
        outcome, completed = await self._stored(lambda store: store_received(store, statuses, announcements, presences))
        self._link.ack_all([message for _, _, message in batch])  # stored (or refused for good): the broker may forget
        self._count(outcome)
        for command_id, reason in outcome.rejected:
            log.info("ignored a status for command %s: %s", command_id, reason, extra={"command_id": command_id})
        for operation_id in completed:
            log.info("operation %s completed", operation_id, extra={"operation_id": operation_id})
        if outcome.to_clear:
            try:
                await self._dispatcher.clear_soon(outcome.to_clear)
            except ConnectionLost as err:
                # The dispatcher's sweep clears whatever is left once the connection is back.
                log.warning("could not clear %d retained command(s) yet: %s", len(outcome.to_clear), err)

    async def _stored(self, work: Callable[[Store], T]) -> T:
        """Run `work` on the store's thread until it succeeds. While the disk is full nothing is acknowledged: the
        batch is tried again now and then, and what arrives meanwhile waits here, then (HIGH_WATER) on the broker."""
        pause = FULL_RETRY_FIRST_S
        while True:
            try:
                return await self._writes.call(work)
            except StorageUnavailable:
                await asyncio.sleep(pause)
                pause = min(pause * 2, FULL_RETRY_MAX_S)

    def _count(self, outcome: IngestOutcome) -> None:
        metrics = self._metrics
        for status, count in outcome.applied_by_status.items():
            metrics.statuses_ingested.labels(str(status)).inc(count)
        if outcome.rejected:
            metrics.statuses_rejected.inc(len(outcome.rejected))
        for seconds in outcome.finished_after_s:
            metrics.command_latency.observe(seconds)


def store_received(
    store: Store,
    statuses: list[tuple[str, StatusReport]],
    announcements: list[Announcement],
    presences: list[tuple[str, PresenceState]],
) -> tuple[IngestOutcome, list[str]]:
    """On the store's thread: each kind in one transaction, then the operations the statuses touched move on.

    Returns what the statuses changed and the operations that completed.
    """
    if announcements:
        with store.transaction():  # together: a retry after a full disk would no longer see the zones change
            moved = store.devices.record_announcements(announcements)
            if moved:
                follow_moved_devices(store, moved)  # the dispatcher's next sweep sends what now opens
    if presences:
        store.devices.record_presences(presences)
        online = [device_id for device_id, state in presences if state is PresenceState.ONLINE]
        store.cancellations.send_again_to(online, datetime.now(UTC))
    outcome = store.commands.apply_statuses(statuses) if statuses else IngestOutcome()
    # Any final status, even one refused as late, says the device has nothing left to stop.
    store.cancellations.confirm([(d, r.command_id) for d, r in statuses if r.status in TERMINAL_DEVICE_STATUSES])
    try:
        return outcome, _move_on(store, outcome.operations)
    except StorageUnavailable:
        # The statuses are stored: acknowledge them. The dispatcher's sweep ends the operations once space returns.
        return outcome, []


def _move_on(store: Store, operations: set[str]) -> list[str]:
    """Log that the operations' devices are reporting, and end those that are done; the ones that ended."""
    completed = []
    for operation_id in operations:
        if not store.operations.has_activity(operation_id, ActivityState.DISPATCHED):
            if store.commands.any_waiting(operation_id):
                continue  # dispatch logs DISPATCHED, then PROCESSING, once this pass of it ends
            # Stored before dispatch (on the loop) logged that every command is out: the log says so first.
            published = store.operations.stats(operation_id).dispatched_device_count
            if store.operations.add_activity_once(
                operation_id, ActivityState.DISPATCHED, f"{published} command(s) published"
            ):
                store.commands.published(published)
        store.operations.add_activity_once(operation_id, ActivityState.PROCESSING, REPORTING)
        if finish_if_done(store, operation_id):
            completed.append(operation_id)
    return completed


def parse_received(topics: Topics, message: Publish) -> Received | None:
    """Decode what a device published; None (logged) for a cleared retained message or anything malformed or foreign."""
    topic, payload = message.topic, message.payload
    if not payload:
        return None  # a cleared retained message
    try:
        parsed = topics.parse(topic)
        decoded: StatusReport | Announcement | Presence
        if parsed.kind is TopicKind.STATUS:
            decoded = decode(StatusReport, payload)
            if decoded.command_id != parsed.command_id:
                raise TetherProtocolError(f"payload command_id {decoded.command_id!r} differs from the topic's")
        elif parsed.kind is TopicKind.ANNOUNCE:
            decoded = decode(Announcement, payload)
            _same_device(decoded.device_id, parsed.device_id)
        elif parsed.kind is TopicKind.PRESENCE:
            decoded = decode(Presence, payload)
            _same_device(decoded.device_id, parsed.device_id)
        else:
            raise TetherProtocolError(f"devices do not publish {parsed.kind} messages")
    except TetherProtocolError as err:
        log.warning("skipped a message on %s: %s", topic, err)
        return None
    return parsed.device_id, decoded, message


def take_batch(waiting: deque[Received]) -> list[Received]:
    """What waits (one at least), in order, up to MAX_BATCH rows to change or MAX_BATCH_MESSAGES messages."""
    batch = [first := waiting.popleft()]
    rows = {_row_of(first)}
    while waiting and len(rows) < MAX_BATCH and len(batch) < MAX_BATCH_MESSAGES:
        batch.append(received := waiting.popleft())
        rows.add(_row_of(received))
    return batch


def _row_of(received: Received) -> tuple[type, str]:
    """The row a received message changes: its command's for a status, its device's otherwise."""
    _, item, _ = received
    return (StatusReport, item.command_id) if isinstance(item, StatusReport) else (type(item), item.device_id)


def _same_device(payload_device: str, topic_device: str) -> None:
    if payload_device != topic_device:
        raise TetherProtocolError(f"payload names device {payload_device!r} but the topic names {topic_device!r}")
