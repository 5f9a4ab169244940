"""Pure decisions about a whole operation from its per-device counts."""

from dataclasses import dataclass

from controller.store.records import OperationStats
from shared.operations import ActivityState, OperationState


@dataclass(frozen=True, slots=True)
class Completion:
    state: OperationState
    activity: ActivityState
    message: str
    reason: str | None


def completion(stats: OperationStats, *, all_dispatched: bool, stop_reason: str | None = None) -> Completion | None:
    """How the operation ends once every device has a final status; None while any is still running.

    An operation runs to COMPLETED whatever its devices' outcomes; one that was cancelled or aborted (`stop_reason`)
    ends FAILED with that reason.
    """
    if not all_dispatched or stats.unfinished_device_count:
        return None
    failed = stats.failed_device_count + stats.dispatch_failed_count
    message = f"{stats.success_device_count} succeeded, {failed} failed of {stats.resolved_device_count} device(s)"
    if stop_reason is not None:
        return Completion(OperationState.FAILED, ActivityState.FAILURE, f"{stop_reason}; {message}", stop_reason)
    if failed:
        return Completion(OperationState.COMPLETED, ActivityState.FAILURE, message, message)
    return Completion(OperationState.COMPLETED, ActivityState.SUCCESS, message, None)
