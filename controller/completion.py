"""Ends an operation in the store once its devices are done; the decision itself is controller.aggregation's."""

from controller.aggregation import completion
from controller.store import Store
from controller.store.records import SYSTEM_ACTOR
from shared.operations import OperationState


def finish_if_done(store: Store, operation_id: str) -> bool:
    """End an operation once every device has a final status; True if it ended now.

    A RESOLVED operation ends here only when it was stopped before any of its commands went out.
    """
    # One transaction for the check and the move: ingest and dispatch decide this on two threads.
    with store.transaction() as conn:
        operation = store.operations.get(operation_id)
        stopped_early = operation.state is OperationState.RESOLVED and operation.stop_reason is not None
        if operation.state is not OperationState.DISPATCHING and not stopped_early:
            return False
        done = completion(
            operation.stats,
            all_dispatched=not store.commands.any_waiting(operation_id),
            stop_reason=operation.stop_reason,
        )
        if done is None:
            return False
        store.operations.transition_in(
            conn, operation_id, done.state, done.activity, done.message, done.reason, SYSTEM_ACTOR
        )
    return True
