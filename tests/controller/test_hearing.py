"""How far deadlines move after the controller could not hear devices (controller/hearing.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from controller.hearing import RECONNECT_GRACE_S, STALL_S, postponement

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_a_first_connection_ever_adds_only_the_grace() -> None:
    assert postponement(None, NOW, reconnected=True) == RECONNECT_GRACE_S


def test_a_reconnect_adds_the_whole_gap_since_the_controller_last_heard_and_the_grace() -> None:
    """However short the outage: what the broker kept for the controller arrives after the reconnect."""
    assert postponement(NOW - timedelta(seconds=42), NOW, reconnected=True) == 42 + RECONNECT_GRACE_S
    assert postponement(NOW - timedelta(seconds=0.5), NOW, reconnected=True) == 0.5 + RECONNECT_GRACE_S


@pytest.mark.parametrize("gap_s", [0.0, 1.0, STALL_S])
def test_ticks_of_a_connection_that_stayed_up_move_nothing(gap_s: float) -> None:
    assert postponement(NOW - timedelta(seconds=gap_s), NOW, reconnected=False) == 0.0


def test_what_a_stalled_loop_or_a_clock_jumping_ahead_adds_past_the_stall_limit_counts_as_unheard_time() -> None:
    assert postponement(NOW - timedelta(seconds=STALL_S + 7), NOW, reconnected=False) == 7


@pytest.mark.parametrize("gap_s", [0.5, STALL_S, STALL_S + 0.1, 60.0, 86_400.0])
def test_every_tick_of_a_connection_that_stayed_up_brings_deadlines_nearer_however_long_it_stalled(
    gap_s: float,
) -> None:
    """A deadline moves by the postponement while time moves by the gap: a loop stalling at every tick must still
    reach a silent device's deadline."""
    moved = postponement(NOW - timedelta(seconds=gap_s), NOW, reconnected=False)
    assert gap_s - moved >= min(gap_s, STALL_S)


def test_a_clock_turned_back_moves_nothing_back() -> None:
    assert postponement(NOW + timedelta(hours=1), NOW, reconnected=False) == 0.0
    assert postponement(NOW + timedelta(hours=1), NOW, reconnected=True) == RECONNECT_GRACE_S
