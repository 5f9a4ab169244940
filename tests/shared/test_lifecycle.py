"""Every pair of states through the pure transition tables."""

import itertools

import pytest

from shared.errors import IllegalTransition
from shared.lifecycle import (
    advance_device,
    advance_operation,
    changes_device,
    device_statuses_that_may_become,
    is_terminal_operation,
)
from shared.operations import DeviceStatus, OperationState

S = DeviceStatus
LEGAL_DEVICE = {
    (S.PENDING, S.PENDING),
    (S.PENDING, S.EXECUTING),
    (S.PENDING, S.SUCCESSFUL),
    (S.PENDING, S.FAILED),
    (S.EXECUTING, S.EXECUTING),
    (S.EXECUTING, S.SUCCESSFUL),
    (S.EXECUTING, S.FAILED),
    (S.SUCCESSFUL, S.SUCCESSFUL),
    (S.FAILED, S.FAILED),
}
Op = OperationState
LEGAL_OPERATION = {
    (Op.CREATED, Op.RESOLVING),
    (Op.CREATED, Op.FAILED),
    (Op.RESOLVING, Op.RESOLVED),
    (Op.RESOLVING, Op.FAILED),
    (Op.RESOLVED, Op.DISPATCHING),
    (Op.RESOLVED, Op.FAILED),
    (Op.DISPATCHING, Op.COMPLETED),
    (Op.DISPATCHING, Op.FAILED),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(DeviceStatus, repeat=2)))
def test_device_transition(current: DeviceStatus, new: DeviceStatus) -> None:
    if (current, new) in LEGAL_DEVICE:
        assert advance_device(current, new) is new
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
            advance_device(current, new)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(DeviceStatus, repeat=2)))
def test_a_batched_write_moves_exactly_the_legal_changes(current: DeviceStatus, new: DeviceStatus) -> None:
    changes = (current, new) in LEGAL_DEVICE and current != new
    assert changes_device(current, new) is changes
    assert (current in device_statuses_that_may_become(new)) is changes


def test_only_unfinished_commands_may_fail() -> None:
    assert device_statuses_that_may_become(S.FAILED) == (S.PENDING, S.EXECUTING)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(OperationState, repeat=2)))
def test_operation_transition(current: OperationState, new: OperationState) -> None:
    if (current, new) in LEGAL_OPERATION:
        assert advance_operation(current, new) is new
    else:
        with pytest.raises(IllegalTransition):
            advance_operation(current, new)


def test_late_executing_after_success_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        advance_device(DeviceStatus.SUCCESSFUL, DeviceStatus.EXECUTING)


@pytest.mark.parametrize("state", list(OperationState))
def test_terminal_operation_states(state: OperationState) -> None:
    assert is_terminal_operation(state) is (state in (Op.COMPLETED, Op.FAILED))


def test_terminal_device_statuses() -> None:
    assert {s for s in DeviceStatus if s.is_terminal} == {S.SUCCESSFUL, S.FAILED}
