"""Runs commands one at a time, first in first out: journal, validate, execute, report."""

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel

from agent import process_groups
from agent.errors import HandlerError, InvalidArguments
from agent.handlers import handler_for
from agent.handlers.base import (
    Announce,
    AnyHandler,
    HandlerContext,
    InventoryUpdate,
    LostModeUpdate,
    PlatformTools,
    ProfileUpdate,
    RestartOutcome,
    cannot_announce,
    keep_inventory,
    no_lost_mode,
    no_profile,
)
from agent.journal import JOURNAL_LOST, Journal, Stage
from agent.policy import TypePolicy
from agent.process import KILL_GRACE_S
from agent.reachability import ReachabilityCheck, no_broker
from shared.arguments import ArgumentsError, validate_arguments
from shared.logs import about
from shared.messages import AgentHealth, CancelRequest, Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType
from shared.schedule import WINDOW_ENDED, ScheduleError, Window

log = logging.getLogger(__name__)


MAX_PARK_S = 3600.0
RESTARTED = "agent restarted during execution"
PROCESSES_STOPPED = "the processes it had started were stopped"


def seconds_until_window(schedule: dict[str, Any], current_zone: str | None = None) -> float:
    """0 if the command's window is open now, else how long until it opens; HandlerError if it never will.

    Device time is read in `current_zone`, the zone the device announces now: the command's `device_time_zone` is
    the one the controller knew when it resolved the operation, and a SET_TIMEZONE or UPDATE_DEVICE_CONFIG since
    moves the device's window with its clock (seed 000: "the local timezone of the device, wherever it may be").
    """
    try:
        window = Window.from_description(schedule)
    except ScheduleError as err:
        raise HandlerError(f"invalid schedule: {err}") from err
    zone, _ = window.zone(current_zone or schedule.get("device_time_zone"))
    now = utc_now()
    opening = window.next_opening(zone, now)
    if opening is None:
        raise HandlerError(WINDOW_ENDED)
    return (opening - now).total_seconds()


@dataclass(slots=True)
class _Running:
    command_id: str
    handler: AnyHandler
    task: "asyncio.Task[dict[str, Any]]"
    cancel_reason: str | None = None


Publish = Callable[[StatusReport], Awaitable[bool]]
"""Sends one status; returns False when it could not be delivered now (the journal keeps final ones)."""


class Runner:
    def __init__(
        self,
        *,
        device_id: str,
        platform: PlatformTools,
        registry: Mapping[OperationType, AnyHandler],
        journal: Journal,
        publish: Publish,
        work_root: Path,
        allow_destructive: frozenset[OperationType] = frozenset(),
        type_policy: TypePolicy | None = None,
        update_inventory: InventoryUpdate = keep_inventory,
        update_profile: ProfileUpdate = no_profile,
        update_lost_mode: LostModeUpdate = no_lost_mode,
        announce: Announce = cannot_announce,
        time_zone: Callable[[], str | None] = lambda: None,
        reach_broker: ReachabilityCheck = no_broker,
    ) -> None:
        """`time_zone` says the zone the device announces now, which device-time windows are read in."""
        self._device_id = device_id
        self._platform = platform
        self._registry = registry
        self._journal = journal
        self._publish = publish
        self._work_root = work_root
        self._allow_destructive = allow_destructive
        self._type_policy = type_policy or TypePolicy()
        self._update_inventory = update_inventory
        self._update_profile = update_profile
        self._update_lost_mode = update_lost_mode
        self._announce = announce
        self._time_zone = time_zone
        self._reach_broker = reach_broker
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self._started = time.monotonic()
        self._running: _Running | None = None
        self._parked: dict[str, asyncio.TimerHandle] = {}
        """Commands waiting for their schedule window, by id: each goes back on the queue when its timer fires."""
        self._cancelled_before_start: dict[str, str] = {}
        """Commands journalled as started whose handler has not begun yet, when a cancellation arrived."""

    async def accept(self, command: Command) -> None:
        """Take a command off the wire; a command id seen before is never run again."""
        with about(operation_id=command.operation_id, command_id=command.command_id):
            if not self._journal.record_received(command):
                entry = self._journal.get(command.command_id)
                if entry is not None and entry.final_report is not None:
                    # The controller evidently missed the final status (the command is still retained): send it again.
                    log.info("command %s already finished; re-sending its final status", command.command_id)
                    await self._deliver_final(entry.final_report)
                else:
                    log.info("command %s is already queued or running; duplicate ignored", command.command_id)
                return
            if self._journal.in_doubt(command):
                log.warning("command %s (%s) refused: %s", command.command_id, command.operation_type, JOURNAL_LOST)
                await self._finish(command, DeviceStatus.FAILED, reason=JOURNAL_LOST)
                return
            log.info("command %s (%s) queued", command.command_id, command.operation_type)
            await self._report(command, DeviceStatus.PENDING)
            self._queue.put_nowait(command)

    async def refuse(self, command: Command, reason: str) -> None:
        """End a command FAILED with `reason` without running it (a bad signature, an expiry); seen before, it is
        treated as the duplicate it is."""
        with about(operation_id=command.operation_id, command_id=command.command_id):
            if not self._journal.record_received(command):
                await self.accept(command)
                return
            log.warning("command %s (%s) refused: %s", command.command_id, command.operation_type, reason)
            await self._finish(command, DeviceStatus.FAILED, reason=reason)

    async def cancel(self, request: CancelRequest) -> None:
        """Stop a command: a queued one ends FAILED at once, a running one only if its handler is cancellable; a
        finished one has its final status sent again, which confirms the cancellation to the controller."""
        with about(command_id=request.command_id):
            entry = self._journal.get(request.command_id)
            running = self._running
            if entry is None:
                log.info("cancellation of unknown command %s ignored", request.command_id)
            elif entry.stage is Stage.QUEUED:
                await self._finish(entry.command, DeviceStatus.FAILED, reason=request.reason)
            elif entry.stage is Stage.FINISHED:
                # Its final status is the controller's proof that nothing is left to stop: the broker may have lost it.
                log.info("command %s has already finished; re-sending its final status", request.command_id)
                if entry.final_report is not None:
                    await self._deliver_final(entry.final_report)
            elif running is None or running.command_id != request.command_id:
                self._cancelled_before_start[request.command_id] = request.reason  # it is about to start
            elif not running.handler.cancellable:
                log.warning(
                    "command %s (%s) cannot be stopped safely; it runs to its end",
                    request.command_id,
                    entry.command.operation_type,
                )
            elif running.cancel_reason is None:
                log.info("command %s: stopping it (%s)", request.command_id, request.reason)
                running.cancel_reason = request.reason
                running.task.cancel()

    async def recover(self) -> None:
        """After a restart: end what commands left running, decide commands that were executing, and queue those that
        never started."""
        stopped = await self._end_orphaned_groups()
        boot_id = await self._platform.boot_id()
        for entry in self._journal.in_stage(Stage.EXECUTING):
            handler = self._handler_or_none(entry.command)
            decision = (
                handler.outcome_after_restart(entry.boot_id or "", boot_id)
                if handler is not None
                else RestartOutcome(reason=RESTARTED)
            )
            if decision.reason is None:
                await self._finish(entry.command, DeviceStatus.SUCCESSFUL, result=decision.result)
            else:
                stop = f"; {PROCESSES_STOPPED}" if entry.command.command_id in stopped else ""
                await self._finish(entry.command, DeviceStatus.FAILED, reason=decision.reason + stop)
        for entry in self._journal.in_stage(Stage.QUEUED):
            self._queue.put_nowait(entry.command)

    async def _end_orphaned_groups(self) -> set[str]:
        """End the process groups a killed agent left running; return the ids of the commands that had some."""
        stopped = set()
        for command_id, group in self._journal.process_groups():
            with about(command_id=command_id):
                if await process_groups.end_orphaned(group, KILL_GRACE_S):
                    log.warning("command %s: stopped its process group %d, left running", command_id, group.pgid)
                    stopped.add(command_id)
            self._journal.forget_group(group)
        return stopped

    @property
    def journal_loss_unsettled(self) -> bool:
        """Whether commands are in doubt because the journal was lost and has not settled since (see JournalLoss)."""
        loss = self._journal.loss
        return loss is not None and not loss.settled

    def settle_journal_loss(self) -> None:
        if self.journal_loss_unsettled:
            self._journal.settle_loss()
            log.info(
                "journal loss settled: every command the broker held for this device has been seen; only commands "
                "issued before the loss are still failed as 'journal lost'"
            )

    def health(self) -> AgentHealth:
        """What the agent reports of itself in its presence."""
        return AgentHealth(
            reported_at=utc_now(),
            uptime_s=time.monotonic() - self._started,
            rss_bytes=psutil.Process().memory_info().rss,
            queued=self._queue.qsize(),
            running=None if self._running is None else self._running.command_id,
            undelivered=self._journal.undelivered_count(),
        )

    async def resend_undelivered(self) -> None:
        for report in self._journal.undelivered():
            await self._deliver_final(report)

    async def run(self) -> None:
        while True:
            command = await self._queue.get()
            await self._execute(command)

    def _handler_or_none(self, command: Command) -> AnyHandler | None:
        try:
            return handler_for(command.operation_type, self._platform, self._registry)
        except HandlerError:
            return None

    async def _execute(self, command: Command) -> None:
        with about(operation_id=command.operation_id, command_id=command.command_id):
            entry = self._journal.get(command.command_id)
            if entry is None or entry.stage is not Stage.QUEUED:
                return
            try:
                if command.start_before is not None and utc_now() > command.start_before:
                    raise HandlerError(f"expired: not started before {command.start_before.isoformat()}")
                if command.schedule is not None:
                    wait_s = seconds_until_window(command.schedule, self._time_zone())
                    if wait_s > 0:
                        self._park(command, wait_s)
                        return
                handler = self._permitted_handler(command.operation_type)
                try:
                    arguments = validate_arguments(command.operation_type, command.arguments)
                except ArgumentsError as err:
                    raise InvalidArguments(str(err)) from err
                work_dir = self._work_root / command.command_id
                work_dir.mkdir(parents=True, exist_ok=True)
                # Journal before acting: a command that takes the agent down with it is decided on restart, not rerun.
                self._journal.record_started(command.command_id, await self._platform.boot_id())
                await self._report(command, DeviceStatus.EXECUTING)
                log.info("command %s (%s) executing", command.command_id, command.operation_type)
                context = self._context(command, work_dir)
                result = await self._run_handler(command, handler, arguments, context)
            except HandlerError as err:
                await self._finish(command, DeviceStatus.FAILED, reason=str(err), result=err.result)
            except Exception as err:  # a handler bug must still end the command, never the agent
                log.exception("command %s: handler crashed", command.command_id)
                await self._finish(
                    command, DeviceStatus.FAILED, reason=f"internal agent error: {type(err).__name__}: {err}"
                )
            else:
                await self._finish(command, DeviceStatus.SUCCESSFUL, result=result)

    def _permitted_handler(self, operation_type: OperationType) -> AnyHandler:
        """The handler for `operation_type` if this device may run it: allowed by its config, supported by its
        platform, and, if destructive, switched on."""
        refusal = self._type_policy.refusal(operation_type)
        if refusal is not None:
            raise HandlerError(refusal)
        handler = handler_for(operation_type, self._platform, self._registry)
        if handler.destructive and operation_type not in self._allow_destructive:
            raise HandlerError(
                f"{operation_type} is destructive and disabled on this device; enable it with "
                f'allow_destructive = ["{operation_type}"] in the agent config file'
            )
        return handler

    def _context(self, command: Command, work_dir: Path) -> HandlerContext[Any]:
        """What `command`'s handler (or one of its steps, with a work directory of its own) may use."""

        async def run_step(operation_type: OperationType, arguments: BaseModel, step_dir: Path) -> dict[str, Any]:
            handler = self._permitted_handler(operation_type)
            await asyncio.to_thread(step_dir.mkdir, parents=True, exist_ok=True)
            return await handler.run(arguments, self._context(command, step_dir))

        return HandlerContext(
            command,
            self._platform,
            work_dir,
            update_inventory=self._update_inventory,
            update_profile=self._update_profile,
            run_step=run_step,
            update_lost_mode=self._update_lost_mode,
            reach_broker=self._reach_broker,
            announce=self._announce,
        )

    def _park(self, command: Command, wait_s: float) -> None:
        """Queue the command again when its window opens; it stays journalled as queued until then.

        Long waits are cut into hours so a clock that jumps (NTP, DST on a naive RTC) is re-read before it runs.
        """
        log.info("command %s waits %.0f s for its schedule window", command.command_id, wait_s)
        self._parked[command.command_id] = asyncio.get_running_loop().call_later(
            min(wait_s, MAX_PARK_S), self._unpark, command
        )

    def _unpark(self, command: Command) -> None:
        self._parked.pop(command.command_id, None)
        self._queue.put_nowait(command)

    def zone_changed(self) -> None:
        """Read the window of every command waiting for one again now: in the device's new zone it may be open."""
        for handle in self._parked.values():
            handle.cancel()
        parked, self._parked = self._parked, {}
        for command_id in parked:
            entry = self._journal.get(command_id)
            if entry is not None and entry.stage is Stage.QUEUED:
                self._queue.put_nowait(entry.command)

    async def _run_handler(
        self, command: Command, handler: AnyHandler, arguments: Any, context: HandlerContext[Any]
    ) -> dict[str, Any]:
        """Run the handler as its own task, so that a cancellation request can stop it without stopping the runner."""
        cancelled = self._cancelled_before_start.pop(command.command_id, None)
        if cancelled is not None:
            raise HandlerError(cancelled)
        # The handler's task has its own context, in which the processes it starts are recorded for this command.
        handler_context = contextvars.copy_context()
        handler_context.run(process_groups.LEDGER.set, self._journal.group_ledger(command.command_id))
        task = asyncio.create_task(handler.run(arguments, context), context=handler_context)
        running = _Running(command.command_id, handler, task)
        self._running = running
        try:
            return await running.task
        except asyncio.CancelledError:
            # Cancelled by a request, the handler's task is done; cancelled with the runner, it is not.
            if running.cancel_reason is None or not running.task.done():
                raise
            raise HandlerError(running.cancel_reason) from None
        finally:
            self._running = None

    async def _report(self, command: Command, status: DeviceStatus) -> None:
        report = StatusReport(
            command_id=command.command_id, device_id=self._device_id, status=status, timestamp=utc_now()
        )
        await self._publish(report)

    async def _finish(
        self,
        command: Command,
        status: DeviceStatus,
        *,
        reason: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        report = StatusReport(
            command_id=command.command_id,
            device_id=self._device_id,
            status=status,
            timestamp=utc_now(),
            result=result,
            failure_reason=reason,
        )
        self._journal.record_finished(report)
        self._cancelled_before_start.pop(command.command_id, None)
        log.info("command %s %s%s", command.command_id, status, f": {reason}" if reason else "")
        await self._deliver_final(report)

    async def _deliver_final(self, report: StatusReport) -> None:
        if await self._publish(report):
            self._journal.mark_delivered(report.command_id)
