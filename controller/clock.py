"""Timestamps as the APIs show them: UTC, ISO 8601, millisecond precision, `Z` suffix."""

from datetime import UTC, datetime


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return to_iso(datetime.now(UTC))
