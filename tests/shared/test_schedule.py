"""WINDOW schedule maths: validation, the wire form, days, midnight, zones, DST, leap days and long windows."""

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.operations import TimeType
from shared.schedule import UNKNOWN_ZONE_NOTE, WEEKDAYS, ScheduleError, Window

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
NOW = datetime(2020, 1, 1, tzinfo=UTC)
"""Before every window below, so that none is refused as already past unless a test means it to be."""

CONSOLE, DEVICE = TimeType.CONSOLE, TimeType.DEVICE


def make(
    start: str | None,
    end: str | None,
    *,
    time_type: TimeType | None = CONSOLE,
    days: Sequence[str] | None = None,
    now: datetime = NOW,
    time_zone: str | None = None,
) -> Window:
    return Window.from_request(
        start=None if start is None else datetime.fromisoformat(start),
        end=None if end is None else datetime.fromisoformat(end),
        time_type=time_type,
        days=days,
        now=now,
        time_zone=time_zone,
    )


def utc(text: str) -> datetime:
    """An aware UTC instant from "YYYY-MM-DDTHH:MM[:SS]"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def show(instant: datetime) -> str:
    assert instant.tzinfo is UTC, f"{instant!r} is not in UTC"
    return instant.replace(tzinfo=None).isoformat()


def spans(window: Window, zone: tzinfo, after: str = "2000-01-01T00:00") -> list[tuple[str, str]]:
    """The intervals as UTC wall-clock strings, checking on the way that each is in UTC."""
    return [(show(opens), show(closes)) for opens, closes in window.intervals(zone, utc(after))]


def reject(field: str, match: str, **request: Any) -> None:
    with pytest.raises(ScheduleError, match=match) as caught:
        make(**request)
    assert caught.value.field == field


# Validation


def test_schedule_error_is_a_value_error_with_a_field() -> None:
    err = ScheduleError("schedule_args.days.2", "'Funday' is not a weekday")
    assert isinstance(err, ValueError)
    assert err.field == "schedule_args.days.2"
    assert str(err) == "'Funday' is not a weekday"


@pytest.mark.parametrize(
    ("start", "end", "field", "match"),
    [
        (None, "2024-08-10T16:00:00Z", "schedule_args.start_datetime", "start_datetime is required"),
        ("2024-08-08T14:30:00Z", None, "schedule_args.end_datetime", "end_datetime is required"),
        (None, None, "schedule_args.start_datetime", "start_datetime is required"),
        ("2024-08-08T14:30:00", "2024-08-10T16:00:00Z", "schedule_args.start_datetime", "needs a UTC offset"),
        ("2024-08-08T14:30:00Z", "2024-08-10T16:00:00", "schedule_args.end_datetime", "needs a UTC offset"),
        ("2024-08-08T14:30:00Z", "2024-08-08T14:30:00Z", "schedule_args.end_datetime", "must be after start"),
        ("2024-08-08T14:30:00Z", "2024-08-08T14:29:59Z", "schedule_args.end_datetime", "must be after start"),
        # The same instant in another offset is not later.
        ("2024-08-08T14:30:00+05:30", "2024-08-08T09:00:00Z", "schedule_args.end_datetime", "must be after start"),
        # Microseconds are dropped before comparing, so these two are the same second.
        ("2024-08-08T14:30:00.100Z", "2024-08-08T14:30:00.900Z", "schedule_args.end_datetime", "must be after start"),
        ("2024-08-08T14:30:00Z", "9999-12-31T00:00:00Z", "schedule_args.end_datetime", "years 2..9998"),
        ("0001-01-01T00:00:00Z", "2024-08-10T16:00:00Z", "schedule_args.start_datetime", "years 2..9998"),
        ("2024-08-08T14:30:00Z", "9999-01-01T00:00:00+14:00", "schedule_args.end_datetime", "years 2..9998"),
    ],
)
def test_bad_datetimes_name_their_field(start: str | None, end: str | None, field: str, match: str) -> None:
    reject(field, match, start=start, end=end)


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (datetime(2024, 8, 10, 15, 59, 59, tzinfo=UTC), True),
        (datetime(2024, 8, 10, 16, 0, tzinfo=UTC), False),
        (datetime(2024, 8, 10, 18, 0, tzinfo=timezone(timedelta(hours=2))), False),  # the same instant
        (datetime(2024, 8, 11, tzinfo=UTC), False),
    ],
)
def test_end_must_not_be_past(now: datetime, accepted: bool) -> None:
    request: dict[str, Any] = {"start": "2024-08-08T14:30:00Z", "end": "2024-08-10T16:00:00Z", "now": now}
    if accepted:
        make(**request)
    else:
        reject("schedule_args.end_datetime", "already past", **request)


def test_a_start_in_the_past_is_fine() -> None:
    make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", now=utc("2024-08-09T00:00"))


@pytest.mark.parametrize(
    ("days", "field", "bad"),
    [
        (["Funday"], "schedule_args.days.0", "'Funday'"),
        (["Monday", "Mon"], "schedule_args.days.1", "'Mon'"),
        (["monday", "TUESDAY", "Wednesday", ""], "schedule_args.days.3", "''"),
        (["Monday", " Tuesday"], "schedule_args.days.1", "' Tuesday'"),
        (["Monday", 2], "schedule_args.days.1", "2"),
    ],
)
def test_unknown_days_name_their_index_and_the_valid_names(days: list[Any], field: str, bad: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", days=days)
    assert caught.value.field == field
    assert str(caught.value) == f"{bad} is not a weekday; use one of {', '.join(WEEKDAYS)}"


def test_days_as_a_bare_string_is_refused() -> None:
    reject(
        "schedule_args.days",
        "must be an array",
        start="2024-08-08T14:30:00Z",
        end="2024-08-10T16:00:00Z",
        days="Monday",
    )


def test_time_type_defaults_to_console() -> None:
    assert make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", time_type=None).time_type is CONSOLE


def test_naive_now_or_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", now=datetime(2020, 1, 1))
    window = make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z")
    with pytest.raises(ValueError, match="aware"):
        window.is_open(UTC, datetime(2024, 8, 8, 15))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"daily_start": time(9)}, "daily_start and daily_end are the times"),
        ({"daily_end": time(9)}, "daily_start and daily_end are the times"),
        ({"local_end": datetime(2024, 8, 8, 14, 30)}, "local_end must follow local_start"),
        (
            {"local_start": datetime(2024, 8, 8, 14, 30, 0, 5), "daily_start": time(14, 30, 0, 5)},
            "without microseconds",
        ),
        ({"local_start": datetime(2024, 8, 8, 14, 30, tzinfo=UTC)}, "naive"),
        ({"days": frozenset({7})}, "weekday numbers"),
    ],
)
def test_a_hand_built_window_must_be_consistent(change: dict[str, Any], match: str) -> None:
    window = make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z")
    with pytest.raises(ValueError, match=match):
        replace(window, **change)


# Derived window times and the wire form


@pytest.mark.parametrize(
    ("start", "end", "window_start", "window_end", "described_end"),
    [
        ("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", "14:30:00", "16:00:00", "2024-08-10T16:00:00+00:00"),
        ("2024-08-08T14:30:00+05:30", "2024-08-10T16:00:00+05:30", "14:30:00", "16:00:00", "2024-08-10T16:00:00+05:30"),
        # Mixed offsets: each time field as written (seed 000), and end_datetime echoed in its own offset.
        ("2024-08-08T14:30:00+05:30", "2024-08-10T10:30:00Z", "14:30:00", "10:30:00", "2024-08-10T10:30:00+00:00"),
        ("2024-08-08T22:00:00-07:00", "2024-08-10T03:00:00+02:00", "22:00:00", "03:00:00", "2024-08-10T03:00:00+02:00"),
        # Seconds are kept, microseconds dropped.
        ("2024-08-08T14:30:15.999Z", "2024-08-10T16:00:59.5Z", "14:30:15", "16:00:59", "2024-08-10T16:00:59+00:00"),
    ],
)
def test_window_times_come_from_the_datetimes(
    start: str, end: str, window_start: str, window_end: str, described_end: str
) -> None:
    described = make(start, end).describe()
    assert described["window_start_time"] == window_start
    assert described["window_end_time"] == window_end
    assert described["start_datetime"] == datetime.fromisoformat(start).replace(microsecond=0).isoformat()
    assert described["end_datetime"] == described_end


def test_describe() -> None:
    window = make("2024-08-08T14:30:00+05:30", "2024-08-10T16:00:00+05:30", time_type=DEVICE, days=["friday", "MONDAY"])
    assert window.describe() == {
        "start_datetime": "2024-08-08T14:30:00+05:30",
        "end_datetime": "2024-08-10T16:00:00+05:30",
        "time_type": "device",
        "window_start_time": "14:30:00",
        "window_end_time": "16:00:00",
        "days": ["Monday", "Friday"],
    }
    assert window.console_offset == timedelta(hours=5, minutes=30)
    assert window.daily_start == time(14, 30)
    assert window.local_start == datetime(2024, 8, 8, 14, 30)


@pytest.mark.parametrize(
    ("days", "numbers", "described"),
    [
        (None, set(), []),
        ([], set(), []),
        (["Monday"], {0}, ["Monday"]),
        (["sunday", "SUNDAY", "Sunday", "sUnDaY"], {6}, ["Sunday"]),
        (["Friday", "monday", "Wednesday", "friday"], {0, 2, 4}, ["Monday", "Wednesday", "Friday"]),
        ([day.upper() for day in reversed(WEEKDAYS)], set(range(7)), list(WEEKDAYS)),
    ],
)
def test_days_are_case_insensitive_deduplicated_and_ordered(
    days: list[str] | None, numbers: set[int], described: list[str]
) -> None:
    window = make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", days=days)
    assert window.days == frozenset(numbers)
    assert window.describe()["days"] == described


ROUND_TRIPS = [
    make("2026-03-16T22:00:00+01:00", "2026-04-05T06:00:00+02:00", time_zone="Europe/Berlin"),
    make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z"),
    make("2024-08-08T14:30:15+05:30", "2024-08-10T10:30:00Z", time_type=DEVICE, days=["Sunday", "monday"]),
    make("2024-08-08T22:00:00-07:00", "2024-08-10T03:00:00+02:00", days=list(WEEKDAYS)),
    make("2024-08-08T14:30:00-09:30", "2024-08-09T14:30:00-09:30", time_type=DEVICE),
    make("2028-02-29T09:00:00+14:00", "2028-02-29T17:00:00+14:00", days=["Tuesday"]),
]


@pytest.mark.parametrize("window", ROUND_TRIPS, ids=lambda window: window.describe()["start_datetime"])
def test_describe_round_trips_through_json(window: Window) -> None:
    assert Window.from_description(json.loads(json.dumps(window.describe()))) == window


def test_from_description_is_lenient_where_a_request_is() -> None:
    window = Window.from_description(
        {"start_datetime": "2024-08-08T14:30:00Z", "end_datetime": "2024-08-10T16:00:00Z", "future_field": 1}
    )
    assert window == make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z")
    assert window.time_type is CONSOLE
    assert window.days == frozenset()


def test_from_description_does_not_look_at_the_clock() -> None:
    """An agent may hold a command past its end; it reads the window and finds it closed, which is not malformed."""
    window = Window.from_description(make("2020-08-08T14:30:00Z", "2020-08-10T16:00:00Z").describe())
    assert window.next_opening(UTC, utc("2024-01-01T00:00")) is None


GOOD = make("2024-08-08T14:30:00Z", "2024-08-10T16:00:00Z", days=["Monday"]).describe()


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        ({"start_datetime": None}, "schedule_args.start_datetime", "required"),
        ({"end_datetime": None}, "schedule_args.end_datetime", "required"),
        ({"start_datetime": 1723127400}, "schedule_args.start_datetime", "ISO 8601 string"),
        ({"end_datetime": "next tuesday"}, "schedule_args.end_datetime", "not an ISO 8601 datetime"),
        ({"start_datetime": "2024-08-08T14:30:00"}, "schedule_args.start_datetime", "needs a UTC offset"),
        ({"end_datetime": "2024-08-08T14:30:00Z"}, "schedule_args.end_datetime", "must be after"),
        ({"time_type": "server"}, "schedule_args.time_type", "'server' is not one of 'console', 'device'"),
        ({"time_type": 1}, "schedule_args.time_type", "1 is not one of"),
        ({"days": "Monday"}, "schedule_args.days", "must be an array"),
        ({"days": {"Monday": True}}, "schedule_args.days", "must be an array"),
        ({"days": ["Monday", None]}, "schedule_args.days.1", "None is not a weekday"),
        ({"window_start_time": "09:00:00"}, "schedule_args.window_start_time", "does not match '14:30:00'"),
        ({"window_end_time": "16:00"}, "schedule_args.window_end_time", "does not match '16:00:00'"),
    ],
)
def test_from_description_refuses_malformed(change: dict[str, Any], field: str, match: str) -> None:
    described = {**GOOD, **change}
    with pytest.raises(ScheduleError, match=match) as caught:
        Window.from_description({key: value for key, value in described.items() if value is not None})
    assert caught.value.field == field


@pytest.mark.parametrize("described", [["start_datetime"], "start_datetime", None])
def test_from_description_refuses_a_non_object(described: Any) -> None:
    with pytest.raises(ScheduleError) as caught:
        Window.from_description(described)
    assert caught.value.field == "schedule_args"


# Days, midnight and clipping (2024-08-04 is a Sunday, 2024-08-05 a Monday)


@pytest.mark.parametrize(
    ("days", "opening_dates"),
    [
        (None, ["05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16", "17", "18"]),
        ([], ["05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16", "17", "18"]),
        (["monday", "WEDNESDAY"], ["05", "07", "12", "14"]),
        (["Sunday"], ["11", "18"]),
        (["Saturday", "Sunday"], ["10", "11", "17", "18"]),
    ],
)
def test_days_filter(days: list[str] | None, opening_dates: list[str]) -> None:
    window = make("2024-08-05T09:00:00Z", "2024-08-18T17:00:00Z", days=days)
    assert spans(window, UTC) == [(f"2024-08-{day}T09:00:00", f"2024-08-{day}T17:00:00") for day in opening_dates]


def test_a_window_crossing_midnight_closes_the_next_day() -> None:
    window = make("2024-08-05T22:00:00Z", "2024-08-08T02:00:00Z")
    assert spans(window, UTC) == [
        ("2024-08-05T22:00:00", "2024-08-06T02:00:00"),
        ("2024-08-06T22:00:00", "2024-08-07T02:00:00"),
        ("2024-08-07T22:00:00", "2024-08-08T02:00:00"),
    ]


@pytest.mark.parametrize(
    ("days", "expected", "open_monday_1am"),
    [
        (
            ["Sunday"],
            [("2024-08-04T22:00:00", "2024-08-05T02:00:00"), ("2024-08-11T22:00:00", "2024-08-12T02:00:00")],
            True,
        ),
        (
            ["Monday"],
            [("2024-08-05T22:00:00", "2024-08-06T02:00:00"), ("2024-08-12T22:00:00", "2024-08-13T02:00:00")],
            False,
        ),
    ],
)
def test_a_window_belongs_to_the_day_it_opens(
    days: list[str], expected: list[tuple[str, str]], open_monday_1am: bool
) -> None:
    window = make("2024-08-04T22:00:00Z", "2024-08-14T02:00:00Z", days=days)
    assert spans(window, UTC) == expected
    assert window.is_open(UTC, utc("2024-08-05T01:00")) is open_monday_1am


def test_equal_times_make_24_hour_windows() -> None:
    window = make("2024-08-05T14:30:00Z", "2024-08-08T14:30:00Z")
    assert spans(window, UTC) == [
        ("2024-08-05T14:30:00", "2024-08-06T14:30:00"),
        ("2024-08-06T14:30:00", "2024-08-07T14:30:00"),
        ("2024-08-07T14:30:00", "2024-08-08T14:30:00"),
    ]
    # Touching windows are one stretch: a device is not cut off at the daily boundary.
    assert window.open_until(UTC, utc("2024-08-05T15:00")) == utc("2024-08-08T14:30")
    assert window.is_open(UTC, utc("2024-08-06T14:30"))


def test_24_hour_windows_with_gaps_between_the_days() -> None:
    window = make("2024-08-05T14:30:00Z", "2024-08-08T14:30:00Z", days=["Monday", "Wednesday"])
    assert spans(window, UTC) == [
        ("2024-08-05T14:30:00", "2024-08-06T14:30:00"),
        ("2024-08-07T14:30:00", "2024-08-08T14:30:00"),
    ]
    assert window.open_until(UTC, utc("2024-08-05T15:00")) == utc("2024-08-06T14:30")
    assert not window.is_open(UTC, utc("2024-08-06T14:30"))
    assert window.next_opening(UTC, utc("2024-08-06T14:30")) == utc("2024-08-07T14:30")


def test_clipping_drops_what_falls_outside_the_bounds() -> None:
    """A midnight-crossing window: the eve of the start date ends before start, the end date's opens after end."""
    window = make("2024-08-05T22:00:00Z", "2024-08-07T02:00:00Z")
    assert spans(window, UTC, after="2024-08-01T00:00") == [
        ("2024-08-05T22:00:00", "2024-08-06T02:00:00"),
        ("2024-08-06T22:00:00", "2024-08-07T02:00:00"),
    ]
    assert window.bounds(UTC) == (utc("2024-08-05T22:00"), utc("2024-08-07T02:00"))
    assert not window.is_open(UTC, utc("2024-08-05T01:00"))
    assert not window.is_open(UTC, utc("2024-08-07T22:30"))


@pytest.mark.parametrize(
    ("after", "first"),
    [
        ("2024-08-05T16:00", ("2024-08-05T09:00:00", "2024-08-05T17:00:00")),  # the open one comes whole
        ("2024-08-05T16:59:59", ("2024-08-05T09:00:00", "2024-08-05T17:00:00")),
        ("2024-08-05T17:00", ("2024-08-06T09:00:00", "2024-08-06T17:00:00")),  # close is exclusive
        ("2024-08-07T16:59:59", ("2024-08-07T09:00:00", "2024-08-07T17:00:00")),
    ],
)
def test_intervals_after(after: str, first: tuple[str, str]) -> None:
    window = make("2024-08-05T09:00:00Z", "2024-08-07T17:00:00Z")
    assert spans(window, UTC, after=after)[0] == first


@pytest.mark.parametrize("after", ["2024-08-07T17:00", "2024-08-07T17:00:01", "2030-01-01T00:00"])
def test_no_intervals_after_the_end(after: str) -> None:
    assert spans(make("2024-08-05T09:00:00Z", "2024-08-07T17:00:00Z"), UTC, after=after) == []


# Open, next opening and open-until around the boundaries of 09:00-17:00 daily, 5 to 7 August


@pytest.mark.parametrize(
    ("at", "next_opening", "open_until"),
    [
        ("2024-08-04T12:00:00", "2024-08-05T09:00:00", None),
        ("2024-08-05T08:59:59", "2024-08-05T09:00:00", None),
        ("2024-08-05T09:00:00", "2024-08-05T09:00:00", "2024-08-05T17:00:00"),
        ("2024-08-05T09:00:01", "2024-08-05T09:00:01", "2024-08-05T17:00:00"),
        ("2024-08-05T16:59:59.999999", "2024-08-05T16:59:59.999999", "2024-08-05T17:00:00"),
        ("2024-08-05T17:00:00", "2024-08-06T09:00:00", None),
        ("2024-08-05T17:00:01", "2024-08-06T09:00:00", None),
        ("2024-08-06T00:00:00", "2024-08-06T09:00:00", None),
        ("2024-08-07T16:59:59", "2024-08-07T16:59:59", "2024-08-07T17:00:00"),
        ("2024-08-07T17:00:00", None, None),
        ("2024-08-09T00:00:00", None, None),
    ],
)
def test_boundaries(at: str, next_opening: str | None, open_until: str | None) -> None:
    window = make("2024-08-05T09:00:00Z", "2024-08-07T17:00:00Z")
    instant = utc(at)
    assert window.next_opening(UTC, instant) == (None if next_opening is None else utc(next_opening))
    assert window.open_until(UTC, instant) == (None if open_until is None else utc(open_until))
    assert window.is_open(UTC, instant) is (open_until is not None)


def test_any_offset_in_and_utc_out() -> None:
    window = make("2024-08-05T09:00:00Z", "2024-08-07T17:00:00Z")
    at = datetime(2024, 8, 5, 11, 30, tzinfo=timezone(timedelta(hours=2)))  # 09:30 UTC
    opening = window.next_opening(UTC, at)
    assert opening == at
    assert opening is not None
    assert opening.tzinfo is UTC
    until = window.open_until(UTC, at)
    assert until is not None
    assert until.tzinfo is UTC


# Console and device time


def test_console_time_ignores_the_device_zone() -> None:
    window = make("2024-08-08T02:00:00+02:00", "2024-08-10T03:00:00+02:00")
    offset = timezone(timedelta(hours=2))
    for device_zone in ("Asia/Tokyo", "Europe/Berlin", None, "Not/AZone"):
        assert window.zone(device_zone) == (offset, None)
    assert spans(window, offset) == [
        ("2024-08-08T00:00:00", "2024-08-08T01:00:00"),
        ("2024-08-09T00:00:00", "2024-08-09T01:00:00"),
        ("2024-08-10T00:00:00", "2024-08-10T01:00:00"),
    ]


def test_device_time_opens_at_each_devices_own_wall_clock() -> None:
    window = make("2024-08-08T02:00:00+02:00", "2024-08-10T03:00:00+02:00", time_type=DEVICE)
    tokyo, note = window.zone("Asia/Tokyo")
    assert (tokyo, note) == (TOKYO, None)
    assert spans(window, tokyo) == [  # 02:00 JST is 17:00 UTC the day before
        ("2024-08-07T17:00:00", "2024-08-07T18:00:00"),
        ("2024-08-08T17:00:00", "2024-08-08T18:00:00"),
        ("2024-08-09T17:00:00", "2024-08-09T18:00:00"),
    ]
    assert window.bounds(tokyo) == (utc("2024-08-07T17:00"), utc("2024-08-09T18:00"))
    berlin, _ = window.zone("Europe/Berlin")
    assert spans(window, berlin) == [  # 02:00 CEST is 00:00 UTC
        ("2024-08-08T00:00:00", "2024-08-08T01:00:00"),
        ("2024-08-09T00:00:00", "2024-08-09T01:00:00"),
        ("2024-08-10T00:00:00", "2024-08-10T01:00:00"),
    ]
    at = utc("2024-08-07T17:30")
    assert window.is_open(tokyo, at)
    assert not window.is_open(berlin, at)
    assert window.next_opening(berlin, at) == utc("2024-08-08T00:00")


def test_device_time_reads_the_offset_free_wall_clock() -> None:
    """+05:30 is only how the creator wrote it: the device reads 02:00 on its own clock."""
    window = make("2024-08-08T02:00:00+05:30", "2024-08-08T03:00:00+05:30", time_type=DEVICE)
    assert spans(window, BERLIN) == [("2024-08-08T00:00:00", "2024-08-08T01:00:00")]


@pytest.mark.parametrize("device_zone", [None, "Not/AZone", "America", "", "../etc/passwd", "utc"])
def test_unknown_device_zone_reads_in_utc_with_a_note(device_zone: str | None) -> None:
    window = make("2024-08-08T02:00:00+02:00", "2024-08-09T03:00:00+02:00", time_type=DEVICE)
    zone, note = window.zone(device_zone)
    assert zone is UTC
    assert note == UNKNOWN_ZONE_NOTE == "device time zone unknown; window read in UTC"
    assert spans(window, zone) == [
        ("2024-08-08T02:00:00", "2024-08-08T03:00:00"),
        ("2024-08-09T02:00:00", "2024-08-09T03:00:00"),
    ]


# DST: a skipped time resolves to the transition, a repeated one to its first occurrence


@pytest.mark.parametrize(
    ("zone", "local", "instant"),
    [
        # Europe/Berlin springs forward 2024-03-31 at 01:00 UTC (02:00 CET -> 03:00 CEST).
        (BERLIN, "2024-03-31T01:59:59", "2024-03-31T00:59:59"),
        (BERLIN, "2024-03-31T02:00:00", "2024-03-31T01:00:00"),
        (BERLIN, "2024-03-31T02:30:00", "2024-03-31T01:00:00"),
        (BERLIN, "2024-03-31T02:59:59", "2024-03-31T01:00:00"),
        (BERLIN, "2024-03-31T03:00:00", "2024-03-31T01:00:00"),
        (BERLIN, "2024-03-31T03:00:01", "2024-03-31T01:00:01"),
        # ... and falls back 2024-10-27 at 01:00 UTC (03:00 CEST -> 02:00 CET).
        (BERLIN, "2024-10-27T01:59:59", "2024-10-26T23:59:59"),
        (BERLIN, "2024-10-27T02:00:00", "2024-10-27T00:00:00"),
        (BERLIN, "2024-10-27T02:30:00", "2024-10-27T00:30:00"),
        (BERLIN, "2024-10-27T02:59:59", "2024-10-27T00:59:59"),
        (BERLIN, "2024-10-27T03:00:00", "2024-10-27T02:00:00"),
        # America/New_York springs forward 2024-03-10 at 07:00 UTC (02:00 EST -> 03:00 EDT).
        (NEW_YORK, "2024-03-10T01:59:59", "2024-03-10T06:59:59"),
        (NEW_YORK, "2024-03-10T02:00:00", "2024-03-10T07:00:00"),
        (NEW_YORK, "2024-03-10T02:45:00", "2024-03-10T07:00:00"),
        (NEW_YORK, "2024-03-10T03:00:00", "2024-03-10T07:00:00"),
        # ... and falls back 2024-11-03 at 06:00 UTC (02:00 EDT -> 01:00 EST).
        (NEW_YORK, "2024-11-03T00:59:59", "2024-11-03T04:59:59"),
        (NEW_YORK, "2024-11-03T01:00:00", "2024-11-03T05:00:00"),
        (NEW_YORK, "2024-11-03T01:30:00", "2024-11-03T05:30:00"),
        (NEW_YORK, "2024-11-03T02:00:00", "2024-11-03T07:00:00"),
        # Australia/Lord_Howe moves by 30 minutes: forward 2024-10-06 02:00 -> 02:30 (+10:30 -> +11) ...
        (LORD_HOWE, "2024-10-06T01:59:59", "2024-10-05T15:29:59"),
        (LORD_HOWE, "2024-10-06T02:00:00", "2024-10-05T15:30:00"),
        (LORD_HOWE, "2024-10-06T02:15:00", "2024-10-05T15:30:00"),
        (LORD_HOWE, "2024-10-06T02:30:00", "2024-10-05T15:30:00"),
        # ... and back 2024-04-07 02:00 -> 01:30.
        (LORD_HOWE, "2024-04-07T01:29:59", "2024-04-06T14:29:59"),
        (LORD_HOWE, "2024-04-07T01:30:00", "2024-04-06T14:30:00"),
        (LORD_HOWE, "2024-04-07T01:45:00", "2024-04-06T14:45:00"),
        (LORD_HOWE, "2024-04-07T02:00:00", "2024-04-06T15:30:00"),
    ],
)
def test_local_times_resolve_across_dst(zone: ZoneInfo, local: str, instant: str) -> None:
    window = make(f"{local}Z", "2025-01-01T00:00:00Z", time_type=DEVICE)
    assert window.bounds(zone)[0] == utc(instant)


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        # A window that starts in Berlin's skipped hour opens at the transition and is shorter that day.
        (
            BERLIN,
            "2024-03-30T02:30:00",
            "2024-04-01T04:00:00",
            [
                ("2024-03-30T01:30:00", "2024-03-30T03:00:00"),
                ("2024-03-31T01:00:00", "2024-03-31T02:00:00"),
                ("2024-04-01T00:30:00", "2024-04-01T02:00:00"),
            ],
        ),
        # A window wholly inside the skipped hour has no window that day.
        (
            BERLIN,
            "2024-03-30T02:00:00",
            "2024-04-01T02:30:00",
            [("2024-03-30T01:00:00", "2024-03-30T01:30:00"), ("2024-04-01T00:00:00", "2024-04-01T00:30:00")],
        ),
        # Berlin's repeated hour: opens at the first 02:30, closes at the only 03:30, so it is two hours long.
        (
            BERLIN,
            "2024-10-26T02:30:00",
            "2024-10-28T03:30:00",
            [
                ("2024-10-26T00:30:00", "2024-10-26T01:30:00"),
                ("2024-10-27T00:30:00", "2024-10-27T02:30:00"),
                ("2024-10-28T01:30:00", "2024-10-28T02:30:00"),
            ],
        ),
        # Overnight across the fall-back: 22:00 CEST to 06:00 CET is nine hours.
        (
            BERLIN,
            "2024-10-26T22:00:00",
            "2024-10-27T06:00:00",
            [("2024-10-26T20:00:00", "2024-10-27T05:00:00")],
        ),
        (
            NEW_YORK,
            "2024-03-09T02:15:00",
            "2024-03-11T03:15:00",
            [
                ("2024-03-09T07:15:00", "2024-03-09T08:15:00"),
                ("2024-03-10T07:00:00", "2024-03-10T07:15:00"),
                ("2024-03-11T06:15:00", "2024-03-11T07:15:00"),
            ],
        ),
        (
            NEW_YORK,
            "2024-11-02T01:30:00",
            "2024-11-04T02:30:00",
            [
                ("2024-11-02T05:30:00", "2024-11-02T06:30:00"),
                ("2024-11-03T05:30:00", "2024-11-03T07:30:00"),
                ("2024-11-04T06:30:00", "2024-11-04T07:30:00"),
            ],
        ),
        (
            LORD_HOWE,
            "2024-10-05T02:10:00",
            "2024-10-07T03:00:00",
            [
                ("2024-10-04T15:40:00", "2024-10-04T16:30:00"),
                ("2024-10-05T15:30:00", "2024-10-05T16:00:00"),
                ("2024-10-06T15:10:00", "2024-10-06T16:00:00"),
            ],
        ),
        (
            LORD_HOWE,
            "2024-04-06T01:30:00",
            "2024-04-08T02:00:00",
            [
                ("2024-04-05T14:30:00", "2024-04-05T15:00:00"),
                ("2024-04-06T14:30:00", "2024-04-06T15:30:00"),
                ("2024-04-07T15:00:00", "2024-04-07T15:30:00"),
            ],
        ),
    ],
    ids=[
        "berlin-gap",
        "berlin-wholly-skipped",
        "berlin-repeated",
        "berlin-overnight",
        "ny-gap",
        "ny-repeated",
        "lord-howe-gap",
        "lord-howe-repeated",
    ],
)
def test_dst_days(zone: ZoneInfo, start: str, end: str, expected: list[tuple[str, str]]) -> None:
    window = make(f"{start}Z", f"{end}Z", time_type=DEVICE)
    assert spans(window, zone) == expected


def test_berlin_gap_day_around_the_transition() -> None:
    window = make("2024-03-31T02:30:00Z", "2024-03-31T04:00:00Z", time_type=DEVICE)
    assert not window.is_open(BERLIN, utc("2024-03-31T00:59:59"))
    assert window.next_opening(BERLIN, utc("2024-03-31T00:59:59")) == utc("2024-03-31T01:00")
    assert window.open_until(BERLIN, utc("2024-03-31T01:00")) == utc("2024-03-31T02:00")


def test_console_time_has_no_dst() -> None:
    window = make("2024-03-30T02:30:00+01:00", "2024-04-01T04:00:00+01:00")
    zone, _ = window.zone("Europe/Berlin")
    assert [closes - opens for opens, closes in window.intervals(zone, NOW)] == [timedelta(hours=1, minutes=30)] * 3


# Exhaustively against a brute-force reading of intervals()

ORACLE_CASES = [
    (make("2024-03-29T22:00:00Z", "2024-04-02T06:00:00Z", time_type=DEVICE), BERLIN),
    (make("2024-03-30T02:00:00Z", "2024-04-01T02:30:00Z", time_type=DEVICE), BERLIN),
    (make("2024-10-25T02:30:00Z", "2024-10-29T02:30:00Z", time_type=DEVICE, days=["Sunday", "Tuesday"]), BERLIN),
    (make("2024-11-01T01:30:00Z", "2024-11-05T02:30:00Z", time_type=DEVICE), NEW_YORK),
    (make("2024-10-04T02:15:00Z", "2024-10-08T01:00:00Z", time_type=DEVICE, days=["saturday"]), LORD_HOWE),
]


@pytest.mark.parametrize(
    ("window", "zone"),
    ORACLE_CASES,
    ids=["berlin-overnight-gap", "berlin-wholly-skipped", "berlin-repeated-some-days", "ny-repeated", "lord-howe-sat"],
)
def test_queries_agree_with_the_intervals_every_five_minutes(window: Window, zone: ZoneInfo) -> None:
    every = list(window.intervals(zone, NOW))
    assert all(opens < closes <= following for (opens, closes), (following, _) in itertools.pairwise(every))
    at = every[0][0] - timedelta(hours=6)
    while at < every[-1][1] + timedelta(hours=6):
        containing = [closes for opens, closes in every if opens <= at < closes]
        upcoming = [opens for opens, _ in every if opens > at]
        assert window.is_open(zone, at) is bool(containing)
        assert window.open_until(zone, at) == (containing[0] if containing else None)
        assert window.next_opening(zone, at) == (at if containing else (upcoming[0] if upcoming else None))
        at += timedelta(minutes=5)


# Leap day: 2028-02-28 is a Monday, 02-29 a Tuesday, 03-01 a Wednesday


@pytest.mark.parametrize(("days", "count"), [(["Tuesday"], 1), (["Monday", "Wednesday"], 0), (None, 1)])
def test_a_window_on_the_leap_day_only(days: list[str] | None, count: int) -> None:
    window = make("2028-02-29T09:00:00Z", "2028-02-29T17:00:00Z", days=days)
    assert spans(window, UTC) == [("2028-02-29T09:00:00", "2028-02-29T17:00:00")] * count


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (["Tuesday"], [("2028-02-29T22:00:00", "2028-03-01T02:00:00")]),
        (
            ["Monday", "Wednesday"],
            [("2028-02-28T22:00:00", "2028-02-29T02:00:00"), ("2028-03-01T22:00:00", "2028-03-02T02:00:00")],
        ),
        (
            None,
            [
                ("2028-02-27T22:00:00", "2028-02-28T02:00:00"),
                ("2028-02-28T22:00:00", "2028-02-29T02:00:00"),
                ("2028-02-29T22:00:00", "2028-03-01T02:00:00"),
                ("2028-03-01T22:00:00", "2028-03-02T02:00:00"),
            ],
        ),
    ],
)
def test_days_filter_across_the_leap_day(days: list[str] | None, expected: list[tuple[str, str]]) -> None:
    window = make("2028-02-27T22:00:00Z", "2028-03-02T02:00:00Z", days=days)
    assert spans(window, UTC) == expected


# A year


@pytest.mark.parametrize(
    ("zone", "days", "count"),
    [
        (UTC, None, 366),  # 2024 is a leap year
        (UTC, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"], 262),
        (BERLIN, None, 366),
        (NEW_YORK, ["Sunday"], 52),
    ],
)
def test_a_year_of_windows(zone: tzinfo, days: list[str] | None, count: int) -> None:
    window = make("2024-01-01T09:00:00Z", "2024-12-31T17:00:00Z", time_type=DEVICE, days=days)
    every = list(window.intervals(zone, NOW))
    assert len(every) == count
    assert {closes - opens for opens, closes in every} == {timedelta(hours=8)}


class CountingUTC(tzinfo):
    """UTC that counts how often it is asked for its offset: a measure of work that does not depend on the machine."""

    def __init__(self) -> None:
        self.calls = 0

    def utcoffset(self, dt: datetime | None) -> timedelta:
        self.calls += 1
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC"


def test_late_queries_on_a_long_window_do_not_walk_from_the_start() -> None:
    window = make("2024-01-01T09:00:00Z", "2024-12-31T17:00:00Z", time_type=DEVICE)
    zone = CountingUTC()
    assert window.next_opening(zone, utc("2024-12-30T18:00")) == utc("2024-12-31T09:00")
    assert zone.calls < 50
    zone.calls = 0
    assert len(list(window.intervals(zone, NOW))) == 366
    assert zone.calls > 1000  # the measure measures something


# Seed 000 to the letter: what was sent is echoed, console time is the creator's zone, device time is anyone's


def test_the_request_is_echoed_as_sent_and_window_times_are_its_time_fields() -> None:
    window = Window.from_request(
        start="2026-06-04T22:00+02:00", end="2026-06-05T01:00Z", time_type=None, days=None, now=NOW
    )
    assert window.describe() == {
        "start_datetime": "2026-06-04T22:00+02:00",
        "end_datetime": "2026-06-05T01:00Z",
        "time_type": "console",
        "window_start_time": "22:00:00",
        "window_end_time": "01:00:00",
        "days": [],
    }
    # Read in start's offset, the daily window closes at 01:00+02:00; the overall end is the instant sent.
    zone, _ = window.zone(None)
    assert spans(window, zone) == [("2026-06-04T20:00:00", "2026-06-04T23:00:00")]
    assert window.bounds(zone) == (utc("2026-06-04T20:00"), utc("2026-06-05T01:00"))
    assert Window.from_description(window.describe()).describe() == window.describe()


DST_WINDOW = ("2026-03-16T22:00:00+01:00", "2026-04-05T06:00:00+02:00")


@pytest.mark.parametrize(
    ("time_zone", "at", "next_opening", "open_until"),
    [
        ("Europe/Berlin", "2026-03-20T12:00", "2026-03-20T21:00", None),
        # The night of the change: opens 22:00 CET, closes 06:00 CEST.
        ("Europe/Berlin", "2026-03-28T21:30", "2026-03-28T21:30", "2026-03-29T04:00"),
        # After it, 22:00 CEST is 20:00Z: the wall time the creator meant.
        ("Europe/Berlin", "2026-03-29T12:00", "2026-03-29T20:00", None),
        ("Europe/Berlin", "2026-04-01T12:00", "2026-04-01T20:00", None),
        ("Europe/Berlin", "2026-04-04T20:00", "2026-04-04T20:00", "2026-04-05T04:00"),
        ("Europe/Berlin", "2026-04-05T04:00", None, None),
        # No zone known: start's fixed offset, +01:00 throughout, an hour off after the change.
        (None, "2026-03-29T12:00", "2026-03-29T21:00", None),
        (None, "2026-04-04T21:30", "2026-04-04T21:30", "2026-04-05T04:00"),
    ],
)
def test_console_time_follows_the_creators_zone_across_dst(
    time_zone: str | None, at: str, next_opening: str | None, open_until: str | None
) -> None:
    window = make(*DST_WINDOW, time_zone=time_zone)
    zone, note = window.zone("Asia/Tokyo")  # the device's zone plays no part in console time
    assert note is None
    assert zone == (BERLIN if time_zone else timezone(timedelta(hours=1)))
    assert window.next_opening(zone, utc(at)) == (None if next_opening is None else utc(next_opening))
    assert window.open_until(zone, utc(at)) == (None if open_until is None else utc(open_until))


def test_console_zone_is_described_and_round_trips() -> None:
    window = make(*DST_WINDOW, time_zone="Europe/Berlin")
    assert window.describe()["time_zone"] == "Europe/Berlin"
    assert Window.from_description(window.describe()) == window
    assert "time_zone" not in make(*DST_WINDOW).describe()


@pytest.mark.parametrize("time_zone", ["Mars/Olympus_Mons", "America", "", "../etc/passwd", "+02:00"])
def test_an_unknown_console_zone_names_its_field(time_zone: str) -> None:
    reject("schedule_args.time_zone", "is not an IANA time zone", start=DST_WINDOW[0], end=DST_WINDOW[1],
           time_zone=time_zone)  # fmt: skip


@pytest.mark.parametrize(
    ("time_type", "now", "accepted"),
    [
        # Pago Pago (UTC-11) still has all of 20:00-23:00 ahead; UTC-12 reaches 23:00 at 11:00Z the next day.
        (DEVICE, "2026-06-01T23:30", True),
        (DEVICE, "2026-06-02T10:59:59", True),
        (DEVICE, "2026-06-02T11:00", False),
        (CONSOLE, "2026-06-01T22:59:59", True),
        (CONSOLE, "2026-06-01T23:00", False),
        (CONSOLE, "2026-06-01T23:30", False),
    ],
)
def test_device_time_is_past_only_when_past_in_every_zone(time_type: TimeType, now: str, accepted: bool) -> None:
    request: dict[str, Any] = {
        "start": "2026-06-01T20:00:00Z", "end": "2026-06-01T23:00:00Z", "time_type": time_type, "now": utc(now),
    }  # fmt: skip
    if accepted:
        window = make(**request)
        if time_type is DEVICE:
            pago_pago, _ = window.zone("Pacific/Pago_Pago")
            assert window.next_opening(pago_pago, utc("2026-06-01T23:30")) == utc("2026-06-02T07:00")
            assert window.next_opening(UTC, utc("2026-06-01T23:30")) is None
    else:
        reject("schedule_args.end_datetime", "already past", **request)


def test_device_time_needs_wall_clocks_in_order() -> None:
    start, end = "2026-06-05T02:00:00+05:00", "2026-06-04T23:00:00Z"  # 21:00Z then 23:00Z, but 02:00 then 23:00
    assert make(start, end).bounds(UTC) == (utc("2026-06-04T21:00"), utc("2026-06-04T23:00"))
    reject("schedule_args.end_datetime", "as a wall-clock time", start=start, end=end, time_type=DEVICE)


def test_seed_000s_example_pair_is_a_device_time_window() -> None:
    """14:30:00Z to 15:30:00+05:30: an hour of each device's own clock, though 15:30+05:30 comes first as an instant."""
    start, end = "2024-08-08T14:30:00Z", "2024-08-08T15:30:00+05:30"
    assert spans(make(start, end, time_type=DEVICE), BERLIN) == [("2024-08-08T12:30:00", "2024-08-08T13:30:00")]
    reject("schedule_args.end_datetime", "must be after start", start=start, end=end)
