"""Turns a created operation into per-device commands: resolves its device query, then wakes the dispatcher."""

import logging
from collections.abc import Callable

from controller.query import compile_query
from controller.store import Store
from shared.operations import ActivityState, OperationState

log = logging.getLogger(__name__)

NO_MATCH_REASON = "no device matched operation_device_query"


class Scheduler:
    def __init__(self, store: Store, wake_dispatcher: Callable[[], None]) -> None:
        self._store = store
        self._wake_dispatcher = wake_dispatcher

    def submit(self, operation_id: str) -> None:
        """Resolve an IMMEDIATE operation now and let the dispatcher publish its commands."""
        self._resolve(operation_id)
        self._wake_dispatcher()

    def recover(self) -> None:
        """After a restart, resolve whatever was created but not resolved, and resume dispatching."""
        for operation_id in self._store.operations_in_states([OperationState.CREATED, OperationState.RESOLVING]):
            self._resolve(operation_id)
        self._wake_dispatcher()

    def _resolve(self, operation_id: str) -> None:
        operation = self._store.get_operation(operation_id)
        if operation.state is OperationState.CREATED:
            self._store.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
        # A RESOLVING operation found after a crash has no targets yet: they are written atomically with RESOLVED.
        query = compile_query(operation.device_query)
        candidates = self._store.iter_devices(query.device_ids())
        matched = [device.device_id for device in candidates if query.matches(device.as_query_document())]
        if not matched:
            self._store.transition(
                operation_id,
                OperationState.FAILED,
                activity=ActivityState.FAILURE,
                message=NO_MATCH_REASON,
                reason=NO_MATCH_REASON,
            )
            return
        self._store.commands.resolve(operation_id, matched)
        log.info("operation %s resolved to %d device(s)", operation_id, len(matched))
