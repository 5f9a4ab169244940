"""Pure transition tables for operation states and per-device command statuses.

Nothing in Tether writes a state without asking `advance_*` first, so a late or replayed message can never move
a lifecycle backwards (a late EXECUTING after SUCCESSFUL is refused, not applied).
"""

from shared.errors import IllegalTransition
from shared.operations import DeviceStatus, OperationState

_S = DeviceStatus
DEVICE_TRANSITIONS: dict[DeviceStatus, frozenset[DeviceStatus]] = {
    _S.PENDING: frozenset({_S.PENDING, _S.EXECUTING, _S.SUCCESSFUL, _S.FAILED}),
    _S.EXECUTING: frozenset({_S.EXECUTING, _S.SUCCESSFUL, _S.FAILED}),
    _S.SUCCESSFUL: frozenset({_S.SUCCESSFUL}),
    _S.FAILED: frozenset({_S.FAILED}),
}
"""Self-loops are legal no-ops: duplicates and retained redeliveries are normal on MQTT."""

_O = OperationState
OPERATION_TRANSITIONS: dict[OperationState, frozenset[OperationState]] = {
    _O.CREATED: frozenset({_O.RESOLVING, _O.FAILED}),
    _O.RESOLVING: frozenset({_O.RESOLVED, _O.FAILED}),
    _O.RESOLVED: frozenset({_O.DISPATCHING, _O.FAILED}),
    _O.DISPATCHING: frozenset({_O.COMPLETED, _O.FAILED}),
    _O.COMPLETED: frozenset(),
    _O.FAILED: frozenset(),
}


def advance_device(current: DeviceStatus, new: DeviceStatus) -> DeviceStatus:
    """Return the status after `new` is reported in `current`; raise IllegalTransition for a regression."""
    if new not in DEVICE_TRANSITIONS[current]:
        raise IllegalTransition(f"device status cannot move from {current} to {new}")
    return new


def changes_device(current: DeviceStatus, new: DeviceStatus) -> bool:
    """Whether a command in `current` may move to a different status `new`: a self-loop changes nothing to write."""
    return current != new and new in DEVICE_TRANSITIONS[current]


def device_statuses_that_may_become(new: DeviceStatus) -> tuple[DeviceStatus, ...]:
    """Every status a command may leave for `new`, in the table's order: what a batched write of `new` is held to,
    so the SQL stores only the moves the table allows and decides them when it writes, not from an earlier read."""
    return tuple(current for current in DEVICE_TRANSITIONS if changes_device(current, new))


def advance_operation(current: OperationState, new: OperationState) -> OperationState:
    """Return `new` if an operation in `current` may move there; raise IllegalTransition otherwise."""
    if new not in OPERATION_TRANSITIONS[current]:
        raise IllegalTransition(f"operation state cannot move from {current} to {new}")
    return new


def is_terminal_operation(state: OperationState) -> bool:
    return not OPERATION_TRANSITIONS[state]
