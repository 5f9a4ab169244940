"""Pure window maths for WINDOW schedules: validate a request, and say when a device's window is open.

A schedule is a daily window from `daily_start` to `daily_end` (wall-clock times) on the allowed `days`, inside the
overall bounds [start, end). `daily_start` and `daily_end` are the time fields of start_datetime and end_datetime as
the request wrote them (seed 000: "populated by the time field"), whatever their offsets. Seconds are kept,
microseconds dropped; start_datetime and end_datetime are echoed as sent.

- `daily_end <= daily_start`: the window crosses midnight, opening on day D and closing on D+1 (equal = 24 hours).
- A window belongs, for `days`, to the local date on which it opens (Monday 22:00-02:00 is Monday's).
- time_type "console" is "the local timezone of the user creating the schedule": the bounds are the instants as sent,
  and the daily times are read in the creator's IANA zone (`console_zone`, from the request's `time_zone` or the API
  key's), so that a window spanning a DST change keeps its local wall time; without one, in start_datetime's offset.
- time_type "device" re-reads the same wall-clock values (daily times and bounds) in the device's IANA zone, or in
  UTC with a note when the zone is unknown. Such a request is already past only when its end is past in every zone.
- DST: a skipped local time resolves to the transition instant (the first existing local time after the gap); a
  repeated one to its first occurrence. A day whose open and close resolve to an empty interval has no window.
- Each daily interval is clipped to the bounds; an interval left empty does not count. Intervals are [open, close).

Everything returned is an aware UTC datetime; the time is always passed in, never read from a clock.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.operations import TimeType

WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNKNOWN_ZONE_NOTE = "device time zone unknown; window read in UTC"
WINDOW_ENDED = "schedule window ended"
"""The failure reason of a device whose command had not finished when its window's end_datetime passed."""

LATEST_ZONE = timezone(timedelta(hours=-12))
"""The last zone to reach any wall-clock time (Baker Island, UTC-12): a device-time end read there is the latest
instant at which the window can still be open on some device."""
EARLIEST_ZONE = timezone(timedelta(hours=14))
"""The first zone to reach any wall-clock time (Kiribati's Line Islands, UTC+14)."""

_ARGS = "schedule_args"
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_FIRST_YEAR, _LAST_YEAR = 2, 9998
"""A year of margin at both ends of datetime's range, so that no date or offset arithmetic here can overflow."""


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; `field` is the dotted request path, e.g. "schedule_args.end_datetime"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Window:
    """A validated WINDOW schedule, held as wall-clock values so that it can be read in any zone."""

    local_start: datetime
    local_end: datetime
    """start_datetime and end_datetime as written, without their offsets."""
    daily_start: time
    daily_end: time
    days: frozenset[int]
    time_type: TimeType
    console_offset: timedelta
    """start_datetime's offset: what console time falls back to without `console_zone`."""
    end_offset: timedelta
    console_zone: str | None = None
    """The creator's IANA zone, in which console time reads the daily times."""
    sent: tuple[str, str] | None = field(default=None, compare=False)
    """start_datetime and end_datetime as the request spelt them, echoed unchanged."""

    def __post_init__(self) -> None:
        # The request parsers guarantee these; a hand-built Window that breaks them would give silently wrong maths.
        if self.local_start.tzinfo is not None or self.local_end.tzinfo is not None:
            raise ValueError("local_start and local_end are naive wall-clock datetimes")
        if self.local_start.microsecond or self.local_end.microsecond:
            raise ValueError("local_start and local_end are without microseconds")
        if not _ordered(self.time_type, *self._console_bounds(), self.local_start, self.local_end):
            raise ValueError("local_end must follow local_start")
        if self.local_start.year < _FIRST_YEAR or self.local_end.year > _LAST_YEAR:
            raise ValueError(f"local_start and local_end must lie in years {_FIRST_YEAR}..{_LAST_YEAR}")
        if (self.daily_start, self.daily_end) != (self.local_start.time(), self.local_end.time()):
            raise ValueError("daily_start and daily_end are the times of local_start and local_end")
        if not self.days <= frozenset(range(7)):
            raise ValueError("days are weekday numbers, 0 = Monday")

    @classmethod
    def from_request(
        cls,
        *,
        start: datetime | str | None,
        end: datetime | str | None,
        time_type: TimeType | None,
        days: Sequence[str] | None,
        now: datetime,
        time_zone: str | None = None,
    ) -> "Window":
        """Validate a request's schedule_args; raise ScheduleError naming the first bad field.

        `time_zone` is the creator's IANA zone, for console time. A console window is already past when its
        end_datetime is; a device-time one only when its end is past in every zone (UTC-12 reaches it last).
        """
        now = _as_utc(now, "now")
        window = cls._build(_read(start, "start_datetime"), _read(end, "end_datetime"), time_type, days, time_zone)
        zone = LATEST_ZONE if window.time_type is TimeType.DEVICE else UTC
        if window.bounds(zone)[1] <= now:
            past = "already past" if window.time_type is TimeType.CONSOLE else "already past in every time zone"
            raise ScheduleError(f"{_ARGS}.end_datetime", f"end_datetime {window.describe()['end_datetime']} is {past}")
        return window

    def describe(self) -> dict[str, Any]:
        """The schedule_args as the API returns them and as commands carry them; `days: []` means every day."""
        start, end = self.sent or (
            self.local_start.replace(tzinfo=timezone(self.console_offset)).isoformat(),
            self.local_end.replace(tzinfo=timezone(self.end_offset)).isoformat(),
        )
        described: dict[str, Any] = {
            "start_datetime": start,
            "end_datetime": end,
            "time_type": self.time_type.value,
            "window_start_time": self.daily_start.isoformat(),
            "window_end_time": self.daily_end.isoformat(),
            "days": [WEEKDAYS[day] for day in sorted(self.days)],
        }
        if self.console_zone is not None:
            described["time_zone"] = self.console_zone
        return described

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> "Window":
        """The inverse of describe(). Absent time_type and days read as in a request; window times, if present, must
        match the ones derived from the datetimes. Unknown keys are ignored, as in every wire message."""
        if not isinstance(described, Mapping):
            raise ScheduleError(_ARGS, "schedule_args must be an object")
        window = cls._build(
            _read(described.get("start_datetime"), "start_datetime"),
            _read(described.get("end_datetime"), "end_datetime"),
            described.get("time_type"),
            described.get("days"),
            described.get("time_zone"),
        )
        for key, derived in (("window_start_time", window.daily_start), ("window_end_time", window.daily_end)):
            given = described.get(key)
            if given is not None and given != derived.isoformat():
                raise ScheduleError(f"{_ARGS}.{key}", f"{key} {given!r} does not match {derived.isoformat()!r}")
        return window

    def zone(self, device_zone: str | None) -> tuple[tzinfo, str | None]:
        """The zone to read this window in for one device, and a note for the API when it had to fall back to UTC."""
        if self.time_type is TimeType.CONSOLE:
            # A zone checked when the request came may still be missing from a device's own database.
            return _zone_or_none(self.console_zone) or timezone(self.console_offset), None
        known = _zone_or_none(device_zone)
        if known is not None:
            return known, None
        return UTC, UNKNOWN_ZONE_NOTE

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """The overall [start, end): the instants as sent in console time, the wall clocks read in `zone` in device
        time."""
        if self.time_type is TimeType.CONSOLE:
            return self._console_bounds()
        return _to_utc(self.local_start, zone), _to_utc(self.local_end, zone)

    def intervals(self, zone: tzinfo, after: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The daily [open, close) intervals in `zone`, in order and clipped to the bounds, that close after `after`.

        Adjacent intervals may touch (a 24-hour window) but never overlap.
        """
        after = _as_utc(after, "after")
        lower, upper = self.bounds(zone)
        if after >= upper:
            return
        day = self.local_start.date() if self.time_type is TimeType.DEVICE else lower.astimezone(zone).date()
        if after > lower:
            # A window closes at most a day after it opens, so none from before the eve of `after`'s date can matter.
            day = max(day, after.astimezone(zone).date() - _DAY)
        crosses_midnight = self.daily_end <= self.daily_start
        while (opens := _to_utc(datetime.combine(day, self.daily_start), zone)) < upper:
            if self._allows(day):
                closes = _to_utc(datetime.combine(day + _DAY if crosses_midnight else day, self.daily_end), zone)
                opens, closes = max(opens, lower), min(closes, upper)
                if opens < closes and closes > after:
                    yield opens, closes
            day += _DAY

    def next_opening(self, zone: tzinfo, at: datetime) -> datetime | None:
        """`at` if the window is open then, else the next instant it opens, else None: it never opens again."""
        at = _as_utc(at, "at")
        for opens, _ in self.intervals(zone, at):
            return max(opens, at)
        return None

    def is_open(self, zone: tzinfo, at: datetime) -> bool:
        return self.next_opening(zone, at) == _as_utc(at, "at")

    def open_until(self, zone: tzinfo, at: datetime) -> datetime | None:
        """When the window that is open at `at` closes, or None if it is closed at `at`.

        Intervals that touch are one stretch: a device inside a run of 24-hour windows is never cut off at midnight.
        """
        at = _as_utc(at, "at")
        until: datetime | None = None
        for opens, closes in self.intervals(zone, at):
            if until is None and opens > at:
                return None
            if until is not None and opens != until:
                break
            until = closes
        return until

    @classmethod
    def _build(
        cls,
        start_as_sent: tuple[datetime, str],
        end_as_sent: tuple[datetime, str],
        time_type: object,
        days: object,
        console_zone: object,
    ) -> "Window":
        """Everything from_request and from_description check alike: not the clock, which only a request faces."""
        (start, start_text), (end, end_text) = start_as_sent, end_as_sent
        offset, end_offset = start.utcoffset(), end.utcoffset()
        if offset is None:
            raise ScheduleError(f"{_ARGS}.start_datetime", _naive_message("start_datetime", start))
        if end_offset is None:
            raise ScheduleError(f"{_ARGS}.end_datetime", _naive_message("end_datetime", end))
        local_start = _in_range(start, "start_datetime")
        local_end = _in_range(end, "end_datetime")
        kind = _parse_time_type(time_type)
        if not _ordered(kind, local_start - offset, local_end - end_offset, local_start, local_end):
            how = (
                ""
                if kind is TimeType.CONSOLE
                else " as a wall-clock time, which device time reads in each device's zone"
            )
            raise ScheduleError(
                f"{_ARGS}.end_datetime",
                f"end_datetime {end.isoformat()} must be after start_datetime {start.isoformat()}{how}",
            )
        return cls(
            local_start=local_start,
            local_end=local_end,
            daily_start=local_start.time(),
            daily_end=local_end.time(),
            days=_parse_days(days),
            time_type=kind,
            console_offset=offset,
            end_offset=end_offset,
            console_zone=_parse_zone(console_zone),
            sent=(start_text, end_text),
        )

    def _allows(self, day: date) -> bool:
        return not self.days or day.weekday() in self.days

    def _console_bounds(self) -> tuple[datetime, datetime]:
        return (
            self.local_start.replace(tzinfo=timezone(self.console_offset)).astimezone(UTC),
            self.local_end.replace(tzinfo=timezone(self.end_offset)).astimezone(UTC),
        )


def _ordered(kind: TimeType, start: datetime, end: datetime, local_start: datetime, local_end: datetime) -> bool:
    """Console time is the instants sent; device time only their wall clocks, whatever offsets they were written in
    (seed 000's own examples pair 14:30:00Z with 15:30:00+05:30)."""
    return start < end if kind is TimeType.CONSOLE else local_start < local_end


def valid_zone(name: str) -> bool:
    """Whether `name` is an IANA zone this host's database has."""
    return _zone_or_none(name) is not None


def _zone_or_none(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a key that names a directory of the database, such as "America".
        return None


def _parse_zone(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _zone_or_none(value) is None:
        raise ScheduleError(f"{_ARGS}.time_zone", f"time_zone {value!r} is not an IANA time zone, e.g. Europe/Berlin")
    return value


def _to_utc(local: datetime, zone: tzinfo) -> datetime:
    """The instant of wall-clock `local` in `zone`: the first occurrence of a repeated time, the transition for a
    skipped one."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # In a gap, PEP 495 maps fold=0 through the offset before the transition and fold=1 through the one after, so the
    # transition lies between the two readings. It is the first second whose wall clock is past `local`.
    other = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lower, upper = min(first, other), max(first, other)
    low, high = 0, (upper - lower) // _SECOND
    while high - low > 1:
        middle = (low + high) // 2
        if (lower + middle * _SECOND).astimezone(zone).replace(tzinfo=None) > local:
            high = middle
        else:
            low = middle
    return lower + high * _SECOND


def _as_utc(value: datetime, name: str) -> datetime:
    # A naive datetime would be read in the host's zone by astimezone(): a silent error, so refuse it.
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value.isoformat()}")
    return value.astimezone(UTC)


def _naive_message(name: str, value: datetime) -> str:
    return f"{name} {value.isoformat()} needs a UTC offset, e.g. 2024-08-08T14:30:00Z or 2024-08-08T14:30:00+05:30"


def _in_range(value: datetime, name: str) -> datetime:
    """`value`'s wall clock as written, without microseconds, refused near the ends of the calendar."""
    if not _FIRST_YEAR <= value.year <= _LAST_YEAR:
        raise ScheduleError(f"{_ARGS}.{name}", f"{name} must lie in years {_FIRST_YEAR}..{_LAST_YEAR}")
    return value.replace(tzinfo=None, microsecond=0)


def _read(value: object, name: str) -> tuple[datetime, str]:
    """A request's datetime, and how it was spelt; a datetime given by code is spelt in ISO 8601 to the second."""
    if isinstance(value, datetime):
        return value, value.replace(microsecond=0).isoformat()
    return _parse_datetime(value, name), str(value)


def parse_aware(value: str, name: str) -> datetime:
    """A request's `name` (start_datetime or end_datetime): ISO 8601 with a UTC offset, or ScheduleError."""
    parsed = _parse_datetime(value, name)
    if parsed.utcoffset() is None:
        raise ScheduleError(f"{_ARGS}.{name}", _naive_message(name, parsed))
    return parsed


def _parse_datetime(value: object, name: str) -> datetime:
    if value is None:
        raise ScheduleError(f"{_ARGS}.{name}", f"{name} is required for a WINDOW schedule")
    if not isinstance(value, str):
        raise ScheduleError(f"{_ARGS}.{name}", f"{name} must be an ISO 8601 string, got {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise ScheduleError(f"{_ARGS}.{name}", f"{name} {value!r} is not an ISO 8601 datetime") from err


def _parse_time_type(value: object) -> TimeType:
    if value is None:
        return TimeType.CONSOLE
    if isinstance(value, str):
        try:
            return TimeType(value)
        except ValueError:
            pass
    choices = ", ".join(repr(member.value) for member in TimeType)
    raise ScheduleError(f"{_ARGS}.time_type", f"time_type {value!r} is not one of {choices}")


def _parse_days(value: object) -> frozenset[int]:
    """Full English weekday names, any case, duplicates allowed; none or [] means every day."""
    if value is None:
        return frozenset()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ScheduleError(f"{_ARGS}.days", f"days must be an array of weekday names, got {value!r}")
    numbers = {name.casefold(): number for number, name in enumerate(WEEKDAYS)}
    days: set[int] = set()
    for index, name in enumerate(value):
        number = numbers.get(name.casefold()) if isinstance(name, str) else None
        if number is None:
            raise ScheduleError(f"{_ARGS}.days.{index}", f"{name!r} is not a weekday; use one of {', '.join(WEEKDAYS)}")
        days.add(number)
    return frozenset(days)
