"""Publishes each resolved operation's commands as retained QoS 1 messages, and clears them once finished."""

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.clock import now_iso
from controller.completion import finish_if_done
from controller.errors import StorageUnavailable
from controller.fastmqtt.client import ConnectionLost
from controller.metrics import Metrics
from controller.mqtt_link import MqttLink
from controller.rollout import Rollout
from controller.signing_worker import SigningFailed, SigningWorker
from controller.store import Store
from controller.store.commands import Deadline, Target, delivery_deadline
from controller.store.records import OperationRecord
from controller.store_thread import StoreThread
from shared.logs import about
from shared.messages import ARTIFACT_TYPES, ArtifactUpload, Command, CommandBatch, utc_now
from shared.operations import ActivityState, OperationState, OperationType, ScheduleType, TimeType
from shared.schedule import LATEST_ZONE, Window
from shared.topics import Topics

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCHES_IN_FLIGHT = 8
"""Batches published ahead of their acknowledgement: waiting for each one's before the next capped dispatch at a
few thousand commands a second, one broker round trip per batch."""
REPORTING = "devices are reporting"
"""The message of an operation's PROCESSING entry, which follows its DISPATCHED one."""
SWEEP_INTERVAL_S = 5.0
"""How often work left over by a lost connection is retried even if nothing wakes the dispatcher."""


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A batch of commands handed to the broker and not yet acknowledged, so not yet recorded as dispatched."""

    acknowledged: "asyncio.Future[None]"
    targets: list[Target]
    deadlines: list[tuple[str, Deadline]]


@dataclass(frozen=True, slots=True)
class ArtifactSettings:
    public_url: str
    """The controller's base URL as devices reach it, e.g. http://controller.example:8080."""
    max_bytes: int


class Dispatcher:
    def __init__(
        self,
        store: Store,
        writes: StoreThread,
        link: MqttLink,
        topics: Topics,
        artifacts: ArtifactSettings,
        signing: SigningWorker,
        metrics: Metrics | None = None,
    ) -> None:
        """`store` is the event loop's connection; `writes` takes the bookkeeping of every batch published."""
        self._store = store
        self._writes = writes
        self._metrics = metrics or Metrics()
        self._signing = signing
        self._link = link
        self._topics = topics
        self._artifacts = artifacts
        self._wake = asyncio.Event()
        self._next_due_s: float | None = None
        """Seconds until a rate-limited rollout may dispatch again, if sooner than the next sweep."""
        self._resent_for = 0
        """The link's `sessions_started` that the outstanding commands were last published again for."""
        self._lost_by: str | None = None
        """Why the broker lost some of what it held since the last resend, if it did without losing our session."""

    def wake(self) -> None:
        self._wake.set()

    def broker_lost_messages(self, why: str) -> None:
        """The broker kept the controller's session but not every retained command (a Mosquitto killed between two
        saves): publish what is outstanding again, as for a broker that lost everything."""
        self._lost_by = why
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(min(SWEEP_INTERVAL_S, self._next_due_s or SWEEP_INTERVAL_S)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._next_due_s = None
            await self._link.wait_connected()
            try:
                if self._link.sessions_started != self._resent_for or self._lost_by is not None:
                    started, why = self._link.sessions_started, self._lost_by
                    await self.resend_outstanding(why or "the broker had no session for the controller")
                    # Through the writes' thread, as every other write of dispatch: the supervisor publishes them.
                    await self._writes.call(lambda store: store.cancellations.send_again_to_all(datetime.now(UTC)))
                    self._resent_for, self._lost_by = started, None
                await self._sweep()
            except ConnectionLost as err:
                log.warning("dispatch interrupted (%s); will resume after reconnecting", err)
            except SigningFailed as err:
                log.error("dispatch interrupted (%s); will retry in %.0f s", err, SWEEP_INTERVAL_S)
            except StorageUnavailable:
                pass  # logged once, as the disk filled (controller/store/space.py); the next sweep tries again

    async def resend_outstanding(self, why: str) -> None:
        """Publish again every command the broker had and its device has not finished, with its recorded deadline.

        For a broker that lost its retained messages (`why`): the embedded amqtt keeps them only in memory, so a
        device offline while the controller restarted would never get its command. A device that had it ignores the copy
        (an agent runs a command id once), or sends its final status again if the controller never stored it.
        Artifact commands get a new upload token, which revokes the first: not those already executing, whose
        device uses the first. A command being cancelled is never published again: its cancellation is
        (controller/store/cancellations.py).
        """
        after, resent = 0, 0
        while outstanding := self._store.commands.outstanding(BATCH_SIZE, after):
            after = outstanding[-1].target.seq
            for operation_id, group in itertools.groupby(outstanding, key=lambda command: command.operation_id):
                operation = self._store.operations.get(operation_id)
                commands = [c for c in group if not (c.executing and operation.operation_type in ARTIFACT_TYPES)]
                if commands:
                    targets, deadlines = [c.target for c in commands], [c.deadline for c in commands]
                    # _record takes back a command answered meanwhile, whose clear may have reached the broker first.
                    await self._record(await self._publish_commands(operation, targets, deadlines))
                    resent += len(commands)
        if resent:
            log.info("%d outstanding command(s) published again: %s", resent, why)

    async def _sweep(self) -> None:
        for operation_id in self._store.operations.in_states([OperationState.RESOLVED, OperationState.DISPATCHING]):
            with about(operation_id=operation_id):
                try:
                    await self._dispatch(operation_id)
                except ValueError as err:
                    # The operation's own content cannot make a command (text UTF-8 cannot encode, say, stored by an
                    # older version): it fails alone. Raised on, it would stop the controller at every start.
                    self._fail(operation_id, f"its commands cannot be sent: {err}")
        while finished := self._store.commands.uncleared_terminal(BATCH_SIZE):
            await self.clear(finished)

    async def _dispatch(self, operation_id: str) -> None:
        operation = self._store.operations.get(operation_id)
        if operation.stop_reason is not None:
            finish_if_done(self._store, operation_id)
            return
        commands = self._store.commands
        if operation.state is OperationState.RESOLVED:
            if commands.any_waiting(operation_id) and not commands.due(operation_id, 1):
                self._wait_for_window(operation_id)  # stays RESOLVED, showing next_dispatch_at, until one opens
                return
            self._store.operations.start_dispatching(operation_id)
            operation = self._store.operations.get(operation_id)
        rollout = Rollout.from_stored(operation.rollout)
        started_at = datetime.fromisoformat(operation.dispatch_started_at or now_iso())
        published, after = 0, 0
        in_flight: deque[_InFlight] = deque()
        try:
            while True:
                now = datetime.now(UTC)
                already = operation.stats.dispatched_device_count + published
                budget = rollout.dispatch_budget(started_at, now, already)
                if budget == 0:
                    self._due_in(rollout.seconds_until_next(started_at, now, already))
                    break
                batch = commands.due(operation_id, BATCH_SIZE if budget is None else min(budget, BATCH_SIZE), after)
                if not batch:
                    break
                after = batch[-1].seq  # the batches in flight are still recorded as waiting
                batch = self._refuse_unsupported(operation.operation_type, batch)
                if batch:
                    in_flight.append(await self._publish_commands(operation, batch))
                    published += len(batch)
                while in_flight and (len(in_flight) > BATCHES_IN_FLIGHT or in_flight[0].acknowledged.done()):
                    await self._record(in_flight.popleft())
            while in_flight:
                await self._record(in_flight.popleft())
        finally:
            for batch_in_flight in in_flight:  # the connection went: those stay waiting and go out again later
                _forget(batch_in_flight.acknowledged)
        message = f"{published} command(s) published"
        if published and self._store.operations.add_activity_once(operation_id, ActivityState.DISPATCHED, message):
            log.info("operation %s: %d command(s) published", operation_id, published)
            self._writes.submit(lambda store: store.commands.published(published))  # off the loop: it may ANALYZE
        if (
            self._store.operations.has_activity(operation_id, ActivityState.DISPATCHED)
            and not self._store.operations.has_activity(operation_id, ActivityState.PROCESSING)
            and commands.any_reported(operation_id)  # a scan of the operation's rows: only while it can matter
        ):
            # Ingest leaves PROCESSING to follow DISPATCHED; devices that reported meanwhile may send nothing more.
            self._store.operations.add_activity_once(operation_id, ActivityState.PROCESSING, REPORTING)
        self._wait_for_window(operation_id)
        finish_if_done(self._store, operation_id)

    async def _publish_commands(
        self, operation: OperationRecord, batch: list[Target], recorded: list[Deadline] | None = None
    ) -> "_InFlight":
        """`recorded`: the deadlines of commands published before, which they keep. Such a copy reads as issued when
        its operation was created, no later than the first: an agent that lost its journal since must take it for
        one it may have run (agent/journal.py), never for a new command."""
        issued_at = utc_now() if recorded is None else datetime.fromisoformat(operation.created_at)
        delivery = delivery_deadline(operation.delivery_timeout_s, None, issued_at)
        uploads = self._uploads(operation.id, operation.operation_type, batch)
        commands = CommandBatch(
            Command(
                command_id=batch[0].command_id,
                operation_id=operation.id,
                device_id=batch[0].device_id,
                operation_type=operation.operation_type,
                arguments=operation.arguments,
                issued_at=issued_at,
            )
        )
        delivery_start = datetime.fromisoformat(delivery.at)
        anywhere_end = _device_time_end(operation)
        topics, texts, deadlines = [], [], []
        for index, target in enumerate(batch):
            # A WINDOW command waits on the device for its window and may do so until the window's end.
            if recorded is not None:
                deadline = recorded[index]
            else:
                deadline = delivery if target.window_end is None else delivery_deadline(0, target.window_end)
            start_before = (
                delivery_start if deadline is delivery else anywhere_end or datetime.fromisoformat(deadline.at)
            )
            schedule = (
                None
                if operation.schedule_type is not ScheduleType.WINDOW
                else {**(operation.schedule_args or {}), "device_time_zone": target.window_zone}
            )
            texts.append(
                commands.encode(
                    target.command_id,
                    target.device_id,
                    start_before=start_before,
                    schedule=schedule,
                    artifact_upload=uploads.get(target.command_id),
                )
            )
            topics.append(self._topics.command(target.device_id, target.command_id))
            deadlines.append((target.command_id, deadline))
        messages = list(zip(topics, await self._signing.sign(texts), strict=True))
        return _InFlight(await self._link.publish_batch(messages, retain=True), batch, deadlines)

    async def _record(self, batch: "_InFlight") -> None:
        """Once the broker has a batch of commands, record them dispatched, each with its deadline."""
        await self._link.acknowledged(batch.acknowledged, len(batch.targets))
        to_take_back = await self._writes.call(lambda store: store.commands.mark_dispatched(batch.deadlines))
        self._metrics.commands_published.inc(len(batch.deadlines))
        if to_take_back:
            # Stopped while in flight (take them back before a device runs them), or finished already.
            await self.clear([(t.device_id, t.command_id) for t in batch.targets if t.command_id in to_take_back])

    def _fail(self, operation_id: str, reason: str) -> None:
        log.error("operation %s failed: %s", operation_id, reason)
        self._store.control.abort(operation_id, reason)
        finish_if_done(self._store, operation_id)

    def _wait_for_window(self, operation_id: str) -> None:
        opening = self._store.commands.next_opening(operation_id)
        if opening is not None:
            self._due_in(max(0.0, (datetime.fromisoformat(opening) - datetime.now(UTC)).total_seconds()))

    def _due_in(self, seconds: float | None) -> None:
        if seconds is not None and (self._next_due_s is None or seconds < self._next_due_s):
            self._next_due_s = seconds

    def _uploads(
        self, operation_id: str, operation_type: OperationType, batch: list[Target]
    ) -> dict[str, ArtifactUpload]:
        """One-time upload tokens for the commands of types that produce a file."""
        if operation_type not in ARTIFACT_TYPES:
            return {}
        tokens = self._store.artifacts.issue_tokens([target.command_id for target in batch])
        base = self._artifacts.public_url.rstrip("/")
        return {
            target.command_id: ArtifactUpload(
                url=f"{base}/v0/operations/{operation_id}/devices/{target.device_id}/artifact",
                token=tokens[target.command_id],
                max_bytes=self._artifacts.max_bytes,
            )
            for target in batch
        }

    def _refuse_unsupported(self, operation_type: str, batch: list[Target]) -> list[Target]:
        """Fail at dispatch the devices that announced they cannot run `operation_type`; return the rest."""
        unable = self._store.devices.unable_to_run([target.device_id for target in batch], operation_type)
        refused = [
            (target.command_id, _unannounced_reason(operation_type, unable[target.device_id]))
            for target in batch
            if target.device_id in unable
        ]
        if refused:
            self._store.commands.mark_dispatch_failed(refused)
        refused_ids = {command_id for command_id, _ in refused}
        return [target for target in batch if target.command_id not in refused_ids]

    async def clear(self, finished: list[tuple[str, str]]) -> None:
        """Remove finished commands' retained messages so a reconnecting agent never sees them again."""
        await self._link.publish([(self._topics.command(d, c), b"") for d, c in finished], retain=True)
        command_ids = [command_id for _, command_id in finished]
        await self._writes.call(lambda store: store.commands.mark_cleared(command_ids))

    async def clear_soon(self, finished: list[tuple[str, str]]) -> None:
        """`clear` without waiting for the broker: recorded once it acknowledges, left to the sweep if it never does.

        Ingest clears what each batch finished; waiting for the acknowledgement held every next batch up by a round
        trip to the broker.
        """
        messages = [(self._topics.command(d, c), b"") for d, c in finished]
        acknowledged = await self._link.publish_batch(messages, retain=True)
        command_ids = [command_id for _, command_id in finished]
        acknowledged.add_done_callback(lambda done: self._cleared(done, command_ids))

    def _cleared(self, acknowledged: "asyncio.Future[None]", command_ids: list[str]) -> None:
        if not acknowledged.cancelled() and acknowledged.exception() is None:
            self._writes.submit(lambda store: store.commands.mark_cleared(command_ids))


def _unannounced_reason(operation_type: str, platform: str) -> str:
    """Why a device that did not announce `operation_type` is not sent it: the announcement does not say whether its
    platform cannot run the type or its agent config denies it (denied types are left out of it too)."""
    return f"{operation_type} is not supported on {platform} or is denied by the device's agent config"


def _device_time_end(operation: OperationRecord) -> datetime | None:
    """A device-time window's end as the last zone reaches it: the agent reads its window in the zone it has when the
    command comes to run, which may lie west of the one this command was planned in (agent/runner.py)."""
    if operation.schedule_type is not ScheduleType.WINDOW:
        return None
    window = Window.from_description(operation.schedule_args or {})
    return window.bounds(LATEST_ZONE)[1] if window.time_type is TimeType.DEVICE else None


def _forget(future: "asyncio.Future[None]") -> None:
    """Drop a future nobody will await, without asyncio logging its exception as never retrieved."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()
