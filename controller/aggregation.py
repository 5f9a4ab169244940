"""Pure decisions about a whole operation from its per-device counts."""

from dataclasses import dataclass

from controller.store.records import OperationStats
from shared.operations import ActivityState


@dataclass(frozen=True, slots=True)
class Completion:
    activity: ActivityState
    message: str
    reason: str | None


def completion(stats: OperationStats, *, all_dispatched: bool) -> Completion | None:
    """The operation's final activity once every device has a final status; None while any is still running."""
    if not all_dispatched or stats.unfinished_device_count:
        return None
    failed = stats.failed_device_count + stats.dispatch_failed_count
    message = f"{stats.success_device_count} succeeded, {failed} failed of {stats.resolved_device_count} device(s)"
    if failed:
        return Completion(ActivityState.FAILURE, message, message)
    return Completion(ActivityState.SUCCESS, message, None)
