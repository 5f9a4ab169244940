"""Rollout control and how an operation ends, as pure decisions."""

from datetime import UTC, datetime, timedelta

import pytest

from controller.aggregation import completion
from controller.rollout import Rollout
from controller.store.records import OperationStats
from shared.operations import ActivityState, OperationState

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_without_a_rate_there_is_no_budget_limit() -> None:
    assert Rollout().dispatch_budget(T0, at(0), 5000) is None
    assert Rollout().seconds_until_next(T0, at(0), 5000) is None


@pytest.mark.parametrize(
    ("rate", "elapsed_s", "dispatched", "budget"),
    [
        (60, 0, 0, 1),  # the first device goes at once
        (60, 0, 1, 0),
        (60, 0.99, 1, 0),
        (60, 1.0, 1, 1),
        (60, 10.5, 3, 8),
        (6, 9.9, 1, 0),
        (6, 10, 1, 1),
        (100_000, 3, 0, 5001),
        (60, 30, 100, 0),  # never negative
    ],
)
def test_budget_grows_with_the_rate(rate: int, elapsed_s: float, dispatched: int, budget: int) -> None:
    assert Rollout(rate_per_minute=rate).dispatch_budget(T0, at(elapsed_s), dispatched) == budget


def test_the_next_slot_is_when_the_budget_grows_again() -> None:
    rollout = Rollout(rate_per_minute=6)  # one every 10 s
    assert rollout.seconds_until_next(T0, at(4), 1) == pytest.approx(6)
    assert rollout.dispatch_budget(T0, at(4 + 6), 1) == 1
    assert rollout.seconds_until_next(T0, at(10), 1) is None  # the budget is not zero now
    assert rollout.seconds_until_next(T0, at(0), 3) == pytest.approx(30)


def test_a_clock_before_the_start_counts_as_the_start() -> None:
    assert Rollout(rate_per_minute=60).dispatch_budget(T0, at(-5), 0) == 1


def stats(success: int, failed: int, unfinished: int = 0, dispatch_failed: int = 0) -> OperationStats:
    return OperationStats(
        resolved_device_count=success + failed + unfinished + dispatch_failed,
        dispatched_device_count=success + failed + unfinished,
        dispatch_failed_count=dispatch_failed,
        failed_device_count=failed,
        success_device_count=success,
        unfinished_device_count=unfinished,
    )


@pytest.mark.parametrize(
    ("share", "minimum", "counts", "aborts"),
    [
        (None, 10, stats(0, 50), False),
        (0.2, 10, stats(0, 9, unfinished=100), False),  # too few finished yet
        (0.2, 10, stats(8, 2), False),  # exactly the share is allowed
        (0.2, 10, stats(7, 3), True),
        (0.2, 1, stats(0, 1), True),
        (1.0, 1, stats(0, 100), False),  # a share of 1 never aborts
        (0.2, 10, stats(10, 0, dispatch_failed=50), False),  # unsupported devices are not rollout failures
    ],
)
def test_abort_when_more_than_the_share_of_finished_devices_failed(
    share: float | None, minimum: int, counts: OperationStats, aborts: bool
) -> None:
    reason = Rollout(abort_failure_share=share, abort_min_finished=minimum).abort_reason(counts)
    assert (reason is not None) == aborts


def test_the_abort_reason_gives_the_numbers() -> None:
    reason = Rollout(abort_failure_share=0.25, abort_min_finished=4).abort_reason(stats(2, 2))
    assert reason == "aborted: 2 of 4 finished devices failed, more than the abort_failure_share 0.25"


def test_stored_rollouts_round_trip() -> None:
    assert Rollout.from_stored(None) == Rollout()
    assert Rollout.from_stored({"rate_per_minute": 5}) == Rollout(rate_per_minute=5)


def test_completion_waits_for_every_device_and_dispatch() -> None:
    assert completion(stats(1, 0, unfinished=1), all_dispatched=True) is None
    assert completion(stats(1, 0), all_dispatched=False) is None


def test_completion_of_a_normal_operation() -> None:
    done = completion(stats(3, 0), all_dispatched=True)
    assert done is not None
    assert (done.state, done.activity, done.reason) == (OperationState.COMPLETED, ActivityState.SUCCESS, None)
    failed = completion(stats(2, 1, dispatch_failed=1), all_dispatched=True)
    assert failed is not None
    assert (failed.state, failed.activity) == (OperationState.COMPLETED, ActivityState.FAILURE)
    assert failed.reason == "2 succeeded, 2 failed of 4 device(s)"


def test_a_stopped_operation_ends_failed_with_the_stop_reason() -> None:
    done = completion(stats(2, 1), all_dispatched=True, stop_reason="cancelled by ops")
    assert done is not None
    assert (done.state, done.activity, done.reason) == (
        OperationState.FAILED,
        ActivityState.FAILURE,
        "cancelled by ops",
    )
    assert done.message == "cancelled by ops; 2 succeeded, 1 failed of 3 device(s)"
