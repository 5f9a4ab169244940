"""Turns created operations into per-device commands by resolving their device queries, on a store worker.

Resolving reads every device the query may select and writes a command for each match: seconds for a large fleet
(docs/performance.md). The REST API used to resolve on the loop that serves its requests, which then answered
nothing, not even `/healthz`, until it was done; now the API awaits a store thread with its own connection, and
keeps answering. A request given up meanwhile leaves its operation to the dispatcher's next sweep.
"""

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from controller.clock import to_iso
from controller.query import DeviceQuery, compile_query
from controller.store import Store
from controller.store.commands import DeviceWindow
from controller.store_thread import StoreWorker
from shared.logs import about
from shared.operations import ActivityState, OperationState, ScheduleType, TimeType
from shared.schedule import UNKNOWN_ZONE_NOTE, WINDOW_ENDED, ScheduleError, Window

log = logging.getLogger(__name__)

NO_MATCH_REASON = "no device matched operation_device_query"
NEVER_OPENS = f"{WINDOW_ENDED}: no window of this device opens before end_datetime"

T = TypeVar("T")


class Scheduler:
    """Creates and resolves operations on a store worker; the dispatcher publishes their commands once woken."""

    def __init__(self, worker: StoreWorker, wake_dispatcher: Callable[[], None]) -> None:
        self._worker = worker
        self._wake_dispatcher = wake_dispatcher

    async def create(
        self, device_query: dict[str, Any], store_operation: Callable[[Store], str], answer: Callable[[Store, str], T]
    ) -> T:
        """Check `device_query`, store the operation with `store_operation`, resolve it, and return what `answer`
        reads of it in the same transaction: the operation as created, before the dispatcher can move it on.

        An invalid query raises QueryError before anything is stored. The commands wait for `wake_dispatcher`.
        """

        def create(store: Store) -> T:
            # Matched before the operation is stored: what writes it need not wait for a large fleet to be read.
            zones = _matches(store, compile_query(device_query))
            with store.transaction():  # stored and resolved together, or (a full disk: 507) not at all
                operation_id = store_operation(store)
                _resolve(store, operation_id, zones)
                return answer(store, operation_id)

        return await self._worker.call(create)

    def wake_dispatcher(self) -> None:
        self._wake_dispatcher()

    async def recover(self) -> None:
        """After a restart, resolve whatever was created but not resolved, and resume dispatching."""
        await self._worker.call(_recover)
        self._wake_dispatcher()


def _recover(store: Store) -> None:
    for operation_id in store.operations.in_states([OperationState.CREATED, OperationState.RESOLVING]):
        _resolve(store, operation_id)


def _matches(store: Store, query: DeviceQuery) -> dict[str, str | None]:
    """Device id -> time zone of each device `query` selects, in device id order; only reads."""
    candidates = store.devices.query_documents(query.device_ids(), query.fields)
    return {device_id: zone for device_id, zone, document in candidates if query.matches(document)}


def _resolve(store: Store, operation_id: str, zones: dict[str, str | None] | None = None) -> None:
    """`zones` are the operation's matches, when the caller has them already."""
    with about(operation_id=operation_id):
        _resolve_now(store, operation_id, zones)


def _resolve_now(store: Store, operation_id: str, zones: dict[str, str | None] | None) -> None:
    operation = store.operations.get(operation_id)
    if operation.state is OperationState.CREATED:
        store.operations.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
    # A RESOLVING operation found after a crash has no targets yet: they are written atomically with RESOLVED.
    if zones is None:
        zones = _matches(store, compile_query(operation.device_query))
    matched = list(zones)
    if not matched:
        store.operations.transition(
            operation_id,
            OperationState.FAILED,
            activity=ActivityState.FAILURE,
            message=NO_MATCH_REASON,
            reason=NO_MATCH_REASON,
        )
        return
    if operation.schedule_type is ScheduleType.WINDOW:
        _resolve_windows(store, operation_id, operation.schedule_args or {}, matched, zones)
    else:
        store.commands.resolve(operation_id, matched)
    # Once stored: a POST resolves inside the transaction that creates the operation, which may yet fail.
    store.on_commit(lambda: log.info("operation %s resolved to %d device(s)", operation_id, len(matched)))


def _resolve_windows(
    store: Store, operation_id: str, schedule_args: dict[str, Any], matched: list[str], zones: dict[str, str | None]
) -> None:
    """Give each device its own first opening, read in its time zone when the window is in device time."""
    window = Window.from_description(schedule_args)
    now = datetime.now(UTC)
    windows: dict[str, DeviceWindow] = {}
    refused: dict[str, str] = {}
    unknown_zone = 0
    for device_id in matched:
        planned, note = _plan(window, zones[device_id], now)
        unknown_zone += note is not None
        if planned is None:
            refused[device_id] = NEVER_OPENS
        else:
            windows[device_id] = planned
    note = f"{unknown_zone} device(s) with {UNKNOWN_ZONE_NOTE}" if unknown_zone else None
    store.commands.resolve(operation_id, matched, windows=windows, refused=refused, note=note)


def follow_moved_devices(store: Store, device_ids: list[str]) -> None:
    """Plan again, in its new zone, each device-time window of these devices that has not started: their zone changed
    (SET_TIMEZONE, UPDATE_DEVICE_CONFIG) since the operation resolved.

    A waiting command goes out when the window opens in the new zone; a dispatched one, which its agent reads in the
    zone it has now (agent/runner.py), must start by the new zone's end. One whose window no longer opens keeps
    its place and ends FAILED "schedule window ended" at the end just passed, or on its device.
    """
    now = datetime.now(UTC)
    windows: dict[str, DeviceWindow] = {}
    for command_id, _, zone_name, schedule_args in store.commands.unstarted_windows(device_ids):
        try:
            window = Window.from_description(json.loads(schedule_args))
        except (ScheduleError, ValueError, TypeError):
            continue  # an operation stored by an older version, which its resolution already judged
        if window.time_type is not TimeType.DEVICE:
            continue
        planned, _ = _plan(window, zone_name, now)
        zone, _ = window.zone(zone_name)
        end = to_iso(window.bounds(zone)[1])
        windows[command_id] = planned or DeviceWindow(to_iso(now), end, zone_name)
    store.commands.replan(windows)
    if windows:
        store.on_commit(lambda: log.info("%d command(s) planned again in a new time zone", len(windows)))


def _plan(window: Window, zone_name: str | None, now: datetime) -> tuple[DeviceWindow | None, str | None]:
    """One device's first opening and end, or None if no window opens before the end; and the UTC fallback's note."""
    zone, note = window.zone(zone_name)
    opening = window.next_opening(zone, now)
    if opening is None:
        return None, note
    kept_zone = None if note is not None or window.time_type is TimeType.CONSOLE else zone_name
    return DeviceWindow(to_iso(opening), to_iso(window.bounds(zone)[1]), kept_zone), note
