"""Timestamps as the APIs show them: UTC, ISO 8601, millisecond precision, `Z` suffix."""

from datetime import UTC, datetime

_last_second: tuple[float, str] = (0.0, "1970-01-01T00:00:00.")
"""The last whole second formatted, and its text up to the milliseconds: nearly every moment the controller
formats (a status's, now) falls in the second before, and `isoformat` costs more than the rest of this."""


def to_iso(moment: datetime) -> str:
    global _last_second
    if moment.tzinfo is None or moment.utcoffset():  # in UTC already (most are) it needs no conversion
        moment = moment.astimezone(UTC)
    microsecond = moment.microsecond
    second = moment.timestamp() - microsecond / 1e6
    cached_second, prefix = _last_second  # one read: another thread may replace it meanwhile
    if second != cached_second:
        prefix = moment.isoformat(timespec="seconds")[:19] + "."
        _last_second = (second, prefix)
    return f"{prefix}{microsecond // 1000:03d}Z"


def now_iso() -> str:
    return to_iso(datetime.now(UTC))
