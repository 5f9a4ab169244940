"""A store filled as the controller fills it, for the benchmarks that measure it without a fleet."""

from controller.store import Store
from shared.messages import Announcement, utc_now
from shared.operations import ActivityState, OperationState, OperationType, Platform, ScheduleType


def announce(store: Store, device_ids: list[str]) -> None:
    now = utc_now()
    store.devices.record_announcements(
        [
            Announcement(device_id=d, platform=Platform.LINUX, agent_version="0.1.0", announced_at=now)
            for d in device_ids
        ]
    )


def dispatching_lock(store: Store, device_ids: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """A LOCK operation resolved to `device_ids` and dispatching: its id, and (device id, command id) in seq order."""
    operation_id = store.operations.create(
        operation_type=OperationType.LOCK,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query={"all": True},
        arguments={},
        created_by="bench",
        timeout_s=600,
        delivery_timeout_s=600,
    )
    store.operations.transition(operation_id, OperationState.RESOLVING, activity=ActivityState.QUERY_INITIATED)
    store.commands.add_targets(operation_id, device_ids)
    store.commands.resolved(operation_id, len(device_ids))
    store.operations.start_dispatching(operation_id)
    commands = store.conn.execute(
        "SELECT device_id, command_id FROM device_operations WHERE operation_id = ? ORDER BY seq", (operation_id,)
    ).fetchall()
    return operation_id, [(device_id, command_id) for device_id, command_id in commands]
