"""Timestamps as the APIs show them: UTC, ISO 8601, millisecond precision, `Z` suffix."""

from datetime import UTC, datetime


def to_iso(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset():  # in UTC already (most are) it needs no conversion
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def now_iso() -> str:
    return to_iso(datetime.now(UTC))
