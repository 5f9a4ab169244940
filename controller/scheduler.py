"""Turns created operations into per-device commands by resolving their device queries, on a store worker.

Resolving reads every device the query may select and writes a command for each match: seconds for a large fleet
(docs/performance.md). The REST API used to resolve on the loop that serves its requests, which then answered
nothing, not even `/healthz`, until it was done; now the API awaits a store thread with its own connection, and
keeps answering. A query that may select more than LARGE_QUERY devices is answered as soon as it is stored, in state
CREATED, and the leader's `Resolver` resolves it: a million devices take longer than a client or a load balancer
waits for an answer.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from controller.clock import to_iso
from controller.errors import StorageUnavailable
from controller.query import DeviceQuery, compile_query
from controller.store import Store
from controller.store.commands import DeviceWindow
from controller.store.records import OperationRecord
from controller.store_thread import StoreWorker
from shared.logs import about
from shared.operations import ActivityState, OperationState, ScheduleType, TimeType
from shared.schedule import UNKNOWN_ZONE_NOTE, WINDOW_ENDED, ScheduleError, Window

log = logging.getLogger(__name__)

NO_MATCH_REASON = "no device matched operation_device_query"
NEVER_OPENS = f"{WINDOW_ENDED}: no window of this device opens before end_datetime"
LARGE_QUERY = 20_000
"""Devices a query may select above which its operation is answered before it is resolved (SQLite resolves 20,000
devices in about 0.2 s, PostgreSQL in about 0.4 s; PostgreSQL a million in 23 s, bench/healthz_during_resolve.py)."""
RESOLVE_CHUNK = 5_000
"""Commands written per transaction by a resolution that is not the POST's own. Each chunk holds the other writers
up while it is written: at 20,000 a chunk, a POST beside a 100,000-device resolution on PostgreSQL waited up to
0.5 s (p99 462-493 ms), at 5,000 up to 0.26 s (p99 118-260 ms), the resolution no slower (docs/performance.md)."""
RETRY_S = 1.0
"""How soon the resolver tries again while the database cannot be used."""

T = TypeVar("T")


class Scheduler:
    """Creates and resolves operations on a store worker; the dispatcher publishes their commands once woken."""

    def __init__(
        self, worker: StoreWorker, wake_dispatcher: Callable[[], None], large_query: int = LARGE_QUERY
    ) -> None:
        """`wake_dispatcher` wakes the leader's dispatcher and `Resolver` (controller/leading.py)."""
        self._worker = worker
        self._wake_dispatcher = wake_dispatcher
        self._large_query = large_query

    async def create(
        self, device_query: dict[str, Any], store_operation: Callable[[Store], str], answer: Callable[[Store, str], T]
    ) -> T:
        """Check `device_query`, store the operation with `store_operation`, resolve it unless the query is large,
        and return what `answer` reads of it in the same transaction: the operation as created, before the
        dispatcher (or the resolver) can move it on.

        An invalid query raises QueryError before anything is stored. The commands, and a large query's
        resolution, wait for `wake_dispatcher`.
        """

        def create(store: Store) -> T:
            query = compile_query(device_query)
            if store.devices.more_than(self._large_query, query.device_ids()):
                with store.transaction():
                    operation_id = store_operation(store)
                    return answer(store, operation_id)
            # Matched before the operation is stored: what writes it need not wait for the fleet to be read.
            zones = _matches(store, query)
            with store.transaction():  # stored and resolved together, or (a full disk: 507) not at all
                operation_id = store_operation(store)
                _start_resolving(store, operation_id)
                _write_resolution(store, store.operations.get(operation_id), zones)
                return answer(store, operation_id)

        return await self._worker.call(create)

    def wake_dispatcher(self) -> None:
        self._wake_dispatcher()


class Resolver:
    """The leader's resolution of operations stored unresolved: large queries, answered at once, and what a process
    that stopped (or a replica that died) left CREATED or RESOLVING. It runs once as each term of leading starts,
    and again whenever woken with new work."""

    def __init__(self, worker: StoreWorker, resolved: Callable[[], None]) -> None:
        """`worker` is a store thread of its own: a large resolution holds it for tens of seconds, which must not
        hold up the REST API's creations. `resolved` wakes the dispatcher."""
        self._worker = worker
        self._resolved = resolved
        self._woken = asyncio.Event()
        self._woken.set()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            try:
                resolved = await self._worker.call(resolve_waiting)
            except StorageUnavailable:  # logged where it happened; the next pass adds what the chunks lacked
                self._woken.set()
                await asyncio.sleep(RETRY_S)
                continue
            if resolved:
                self._resolved()


def resolve_waiting(store: Store) -> int:
    """Resolve every operation stored but not yet resolved, oldest first; returns how many there were."""
    waiting = store.operations.in_states([OperationState.CREATED, OperationState.RESOLVING])
    for operation_id in waiting:
        with about(operation_id=operation_id):
            try:
                _resolve(store, operation_id)
            except (ValueError, TypeError, KeyError) as err:  # what an older version stored, and cannot be read now
                _fail_unresolvable(store, operation_id, err)
    return len(waiting)


def _fail_unresolvable(store: Store, operation_id: str, error: Exception) -> None:
    """End an operation whose stored query or schedule cannot be resolved, rather than fail every start after."""
    reason = f"could not be resolved: {error}"
    log.error("operation %s %s", operation_id, reason)
    with store.transaction():
        if store.operations.get(operation_id).state in (OperationState.CREATED, OperationState.RESOLVING):
            store.operations.transition(
                operation_id, OperationState.FAILED, activity=ActivityState.FAILURE, message=reason, reason=reason
            )


def _matches(store: Store, query: DeviceQuery) -> dict[str, str | None]:
    """Device id -> time zone of each device `query` selects, in device id order; only reads."""
    candidates = store.devices.query_documents(query.device_ids(), query.fields)
    return {device_id: zone for device_id, zone, document in candidates if query.matches(document)}


def _resolve(store: Store, operation_id: str) -> None:
    """Resolve an operation stored unresolved, unless another process (a replica that led before this one, still
    finishing) has meanwhile: each write first reads the state again, under the write lock."""
    with store.transaction():
        operation = store.operations.get(operation_id)
        if operation.state is OperationState.CREATED:  # shown RESOLVING while its devices are read
            _start_resolving(store, operation_id)
        elif operation.state is not OperationState.RESOLVING:
            return
    # A RESOLVING operation found after a crash may have some of its targets: those of the chunks written before.
    _write_resolution(store, operation, _matches(store, compile_query(operation.device_query)))


def _start_resolving(store: Store, operation_id: str) -> None:
    store.operations.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)


def _write_resolution(store: Store, operation: OperationRecord, zones: dict[str, str | None]) -> None:
    """A RESOLVING operation's commands, one per device of `zones`, and its move to RESOLVED (FAILED if none).

    The commands go in chunks of RESOLVE_CHUNK, each its own transaction unless the caller's holds them all (a POST
    of a small query): on PostgreSQL as on SQLite a transaction that writes holds every other writer up, and a
    million commands in one held the REST API's writes, ingest and dispatch for tens of seconds. Each chunk stops
    if the operation no longer resolves (cancelled, or resolved by another process); none adds a device twice.
    """
    matched = list(zones)
    windows, refused, note = _planned(operation, matched, zones)
    for start in range(0, len(matched), RESOLVE_CHUNK):
        with store.transaction():
            if store.operations.state(operation.id) is not OperationState.RESOLVING:
                return
            chunk = matched[start : start + RESOLVE_CHUNK]
            store.commands.add_targets(operation.id, chunk, windows=windows, refused=refused)
    with store.transaction():
        if store.operations.state(operation.id) is not OperationState.RESOLVING:
            return
        if not matched:
            store.operations.transition(
                operation.id,
                OperationState.FAILED,
                activity=ActivityState.FAILURE,
                message=NO_MATCH_REASON,
                reason=NO_MATCH_REASON,
            )
            return
        store.commands.resolved(operation.id, len(matched), note)
    # Once stored: a POST resolves inside the transaction that creates the operation, which may yet fail.
    store.on_commit(lambda: log.info("operation %s resolved to %d device(s)", operation.id, len(matched)))


def _planned(
    operation: OperationRecord, matched: list[str], zones: dict[str, str | None]
) -> tuple[dict[str, DeviceWindow], dict[str, str], str | None]:
    """For a WINDOW operation, each device's own first opening, read in its time zone when the window is in device
    time; the devices whose window never opens, with the reason; and a note of those with an unknown zone."""
    windows: dict[str, DeviceWindow] = {}
    refused: dict[str, str] = {}
    if operation.schedule_type is not ScheduleType.WINDOW:
        return windows, refused, None
    window = Window.from_description(operation.schedule_args or {})
    now = datetime.now(UTC)
    unknown_zone = 0
    for device_id in matched:
        planned, note = _plan(window, zones[device_id], now)
        unknown_zone += note is not None
        if planned is None:
            refused[device_id] = NEVER_OPENS
        else:
            windows[device_id] = planned
    return windows, refused, f"{unknown_zone} device(s) with {UNKNOWN_ZONE_NOTE}" if unknown_zone else None


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
