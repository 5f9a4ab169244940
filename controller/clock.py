"""Timestamps as the APIs show them: UTC, ISO 8601, millisecond precision, `Z` suffix."""

from datetime import UTC, datetime

_last_second: tuple[tuple[int, ...], str] = ((), "")
"""The last whole second formatted (its fields, seconds first), and its text up to the milliseconds: nearly every
moment the controller formats (a status's, now) falls in the second before, and `isoformat` costs more than the
rest of this. The fields cost a third of what `timestamp()` did as the key."""


def to_iso(moment: datetime) -> str:
    global _last_second
    if moment.tzinfo is None or moment.utcoffset():  # in UTC already (most are) it needs no conversion
        moment = moment.astimezone(UTC)
    second = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    cached_second, prefix = _last_second  # one read: another thread may replace it meanwhile
    if second != cached_second:
        prefix = moment.isoformat(timespec="seconds")[:19] + "."
        _last_second = (second, prefix)
    return f"{prefix}{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return to_iso(datetime.now(UTC))
