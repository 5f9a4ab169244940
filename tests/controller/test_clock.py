"""The API's timestamp text: UTC, milliseconds, `Z`, whatever second was formatted before."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.clock import now_iso, to_iso


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 12, 2, 17, 5, 1, 123456, tzinfo=UTC), "2026-12-02T17:05:01.123Z"),
        (datetime(2026, 12, 2, 17, 5, 1, 999999, tzinfo=UTC), "2026-12-02T17:05:01.999Z"),
        (datetime(2026, 12, 2, 17, 5, 2, 0, tzinfo=UTC), "2026-12-02T17:05:02.000Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
        (datetime(2027, 1, 1, 1, 0, 0, 1000, tzinfo=timezone(timedelta(hours=1))), "2027-01-01T00:00:00.001Z"),
        (datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), "1969-12-31T23:59:59.500Z"),
    ],
)
def test_moments_in_any_order_give_their_own_text(moment: datetime, text: str) -> None:
    assert to_iso(moment) == text
    assert (
        to_iso(moment - timedelta(seconds=1))
        == (moment - timedelta(seconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"
    )
    assert to_iso(moment) == text  # again, after another second was formatted


def test_every_millisecond_across_a_second_boundary() -> None:
    start = datetime(2026, 12, 2, 17, 5, 1, 990000, tzinfo=UTC)
    for step in range(0, 20_000, 250):
        moment = start + timedelta(microseconds=step)
        assert to_iso(moment) == moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"


def test_now_is_utc_text() -> None:
    text = now_iso()
    parsed = datetime.fromisoformat(text)
    assert text.endswith("Z")
    assert len(text) == 24
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5
