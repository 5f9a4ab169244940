"""Turns a created operation into per-device commands: resolves its device query, then wakes the dispatcher."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.clock import to_iso
from controller.query import compile_query
from controller.store import Store
from controller.store.commands import DeviceWindow
from shared.logs import about
from shared.operations import ActivityState, OperationState, ScheduleType, TimeType
from shared.schedule import UNKNOWN_ZONE_NOTE, WINDOW_ENDED, Window

log = logging.getLogger(__name__)

NO_MATCH_REASON = "no device matched operation_device_query"


class Scheduler:
    def __init__(self, store: Store, wake_dispatcher: Callable[[], None]) -> None:
        self._store = store
        self._wake_dispatcher = wake_dispatcher

    def submit(self, operation_id: str) -> None:
        """Resolve an operation now and let the dispatcher publish its commands (when each device's window opens)."""
        self.resolve(operation_id)
        self.wake_dispatcher()

    def resolve(self, operation_id: str) -> None:
        """Resolve an operation now; its commands wait for `wake_dispatcher` (or the dispatcher's next sweep)."""
        with about(operation_id=operation_id):
            self._resolve(operation_id)

    def wake_dispatcher(self) -> None:
        self._wake_dispatcher()

    def recover(self) -> None:
        """After a restart, resolve whatever was created but not resolved, and resume dispatching."""
        for operation_id in self._store.operations_in_states([OperationState.CREATED, OperationState.RESOLVING]):
            with about(operation_id=operation_id):
                self._resolve(operation_id)
        self._wake_dispatcher()

    def _resolve(self, operation_id: str) -> None:
        operation = self._store.get_operation(operation_id)
        if operation.state is OperationState.CREATED:
            self._store.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
        # A RESOLVING operation found after a crash has no targets yet: they are written atomically with RESOLVED.
        query = compile_query(operation.device_query)
        candidates = self._store.query_documents(query.device_ids(), query.fields)
        zones = {device_id: zone for device_id, zone, document in candidates if query.matches(document)}
        matched = list(zones)
        if not matched:
            self._store.transition(
                operation_id,
                OperationState.FAILED,
                activity=ActivityState.FAILURE,
                message=NO_MATCH_REASON,
                reason=NO_MATCH_REASON,
            )
            return
        if operation.schedule_type is ScheduleType.WINDOW:
            self._resolve_windows(operation_id, operation.schedule_args or {}, matched, zones)
        else:
            self._store.commands.resolve(operation_id, matched)
        # Once stored: a POST resolves inside the transaction that creates the operation, which may yet fail.
        self._store.on_commit(lambda: log.info("operation %s resolved to %d device(s)", operation_id, len(matched)))

    def _resolve_windows(
        self, operation_id: str, schedule_args: dict[str, Any], matched: list[str], zones: dict[str, str | None]
    ) -> None:
        """Give each device its own first opening, read in its time zone when the window is in device time."""
        window = Window.from_description(schedule_args)
        now = datetime.now(UTC)
        windows: dict[str, DeviceWindow] = {}
        refused: dict[str, str] = {}
        unknown_zone = 0
        for device_id in matched:
            zone, note = window.zone(zones[device_id])
            unknown_zone += note is not None
            opening = window.next_opening(zone, now)
            if opening is None:
                refused[device_id] = f"{WINDOW_ENDED}: no window of this device opens before end_datetime"
                continue
            zone_name = None if note is not None or window.time_type is TimeType.CONSOLE else zones[device_id]
            windows[device_id] = DeviceWindow(to_iso(opening), to_iso(window.bounds(zone)[1]), zone_name)
        note = f"{unknown_zone} device(s) with {UNKNOWN_ZONE_NOTE}" if unknown_zone else None
        self._store.commands.resolve(operation_id, matched, windows=windows, refused=refused, note=note)
