"""An operation's per-device counts in the shapes the REST API and the operation events both speak."""

from controller.store.records import OperationStats
from shared.events import DeviceCounts, DeviceOperationStatusesCount, OperationStatsBody


def statistics(stats: OperationStats) -> OperationStatsBody:
    """Seed 000's `operation_stats`."""
    return OperationStatsBody(
        device_operation_statuses_count=DeviceOperationStatusesCount(
            resolved_device_count=stats.resolved_device_count,
            dispatched_device_count=stats.dispatched_device_count,
            dispatch_failed_count=stats.dispatch_failed_count,
            failed_device_count=stats.failed_device_count,
            success_device_count=stats.success_device_count,
        )
    )


def device_counts(stats: OperationStats) -> DeviceCounts:
    return DeviceCounts(
        waiting=stats.waiting_device_count,
        pending=stats.pending_device_count,
        executing=stats.executing_device_count,
        successful=stats.success_device_count,
        failed=stats.failed_device_count + stats.dispatch_failed_count,
    )
