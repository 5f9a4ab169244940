"""Runs commands one at a time, first in first out: journal, validate, execute, report."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, InvalidArguments
from agent.handlers import handler_for
from agent.handlers.base import (
    Handler,
    HandlerContext,
    InventoryUpdate,
    PlatformTools,
    ProfileUpdate,
    RestartOutcome,
    keep_inventory,
    no_profile,
)
from agent.journal import Journal, Stage
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType

log = logging.getLogger(__name__)

Publish = Callable[[StatusReport], Awaitable[bool]]
"""Sends one status; returns False when it could not be delivered now (the journal keeps final ones)."""


class Runner:
    def __init__(
        self,
        *,
        device_id: str,
        platform: PlatformTools,
        registry: Mapping[OperationType, Handler],
        journal: Journal,
        publish: Publish,
        work_root: Path,
        allow_destructive: frozenset[OperationType] = frozenset(),
        update_inventory: InventoryUpdate = keep_inventory,
        update_profile: ProfileUpdate = no_profile,
    ) -> None:
        self._device_id = device_id
        self._platform = platform
        self._registry = registry
        self._journal = journal
        self._publish = publish
        self._work_root = work_root
        self._allow_destructive = allow_destructive
        self._update_inventory = update_inventory
        self._update_profile = update_profile
        self._queue: asyncio.Queue[Command] = asyncio.Queue()

    async def accept(self, command: Command) -> None:
        """Take a command off the wire; a command id seen before is never run again."""
        if not self._journal.record_received(command):
            entry = self._journal.get(command.command_id)
            if entry is not None and entry.final_report is not None:
                # The controller evidently missed the final status (the command is still retained): send it again.
                log.info("command %s already finished; re-sending its final status", command.command_id)
                await self._deliver_final(entry.final_report)
            else:
                log.info("command %s is already queued or running; duplicate ignored", command.command_id)
            return
        log.info("command %s (%s) queued", command.command_id, command.operation_type)
        await self._report(command, DeviceStatus.PENDING)
        self._queue.put_nowait(command)

    async def recover(self) -> None:
        """After a restart: decide commands that were executing, and queue those that never started."""
        boot_id = await self._platform.boot_id()
        for entry in self._journal.in_stage(Stage.EXECUTING):
            handler = self._handler_or_none(entry.command)
            decision = (
                handler.outcome_after_restart(entry.boot_id or "", boot_id)
                if handler is not None
                else RestartOutcome(reason="agent restarted during execution")
            )
            if decision.reason is None:
                await self._finish(entry.command, DeviceStatus.SUCCESSFUL, result=decision.result)
            else:
                await self._finish(entry.command, DeviceStatus.FAILED, reason=decision.reason)
        for entry in self._journal.in_stage(Stage.QUEUED):
            self._queue.put_nowait(entry.command)

    async def resend_undelivered(self) -> None:
        for report in self._journal.undelivered():
            await self._deliver_final(report)

    async def run(self) -> None:
        while True:
            command = await self._queue.get()
            await self._execute(command)

    def _handler_or_none(self, command: Command) -> Handler | None:
        try:
            return handler_for(command.operation_type, self._platform, self._registry)
        except HandlerError:
            return None

    async def _execute(self, command: Command) -> None:
        entry = self._journal.get(command.command_id)
        if entry is None or entry.stage is not Stage.QUEUED:
            return
        try:
            if command.schedule is not None:
                raise HandlerError("scheduled commands need a newer agent; this one runs IMMEDIATE commands only")
            handler = handler_for(command.operation_type, self._platform, self._registry)
            if handler.destructive and command.operation_type not in self._allow_destructive:
                raise HandlerError(
                    f"{command.operation_type} is destructive and disabled on this device; enable it with "
                    f'allow_destructive = ["{command.operation_type}"] in the agent config file'
                )
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
            context = HandlerContext(command, self._platform, work_dir, self._update_inventory, self._update_profile)
            result = await handler.run(arguments, context)
        except HandlerError as err:
            await self._finish(command, DeviceStatus.FAILED, reason=str(err), result=err.result)
        except Exception as err:  # a handler bug must still end the command, never the agent
            log.exception("command %s: handler crashed", command.command_id)
            await self._finish(
                command, DeviceStatus.FAILED, reason=f"internal agent error: {type(err).__name__}: {err}"
            )
        else:
            await self._finish(command, DeviceStatus.SUCCESSFUL, result=result)

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
        log.info("command %s %s%s", command.command_id, status, f": {reason}" if reason else "")
        await self._deliver_final(report)

    async def _deliver_final(self, report: StatusReport) -> None:
        if await self._publish(report):
            self._journal.mark_delivered(report.command_id)
