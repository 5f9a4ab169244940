"""The SQL each engine is given for what they spell differently, run on both: the same answers."""

import pytest

from controller.store import Store

# Time arithmetic (Dialect.seconds_after): deadlines moved on, cancellations' next copies.


@pytest.mark.parametrize(
    ("moment", "seconds", "later"),
    [
        ("2026-12-06T08:03:14.123Z", 30, "2026-12-06T08:03:44.123Z"),
        ("2026-12-06T08:03:14.123Z", 90.5, "2026-12-06T08:04:44.623Z"),
        ("2026-12-31T23:59:59.999Z", 0.001, "2027-01-01T00:00:00.000Z"),
        ("2026-03-01T00:00:00.000Z", -0.5, "2026-02-28T23:59:59.500Z"),
        ("2028-02-28T23:00:00.000Z", 3600, "2028-02-29T00:00:00.000Z"),
    ],
)
def test_a_moment_some_seconds_later_is_the_same_text_on_both_engines(
    store: Store, moment: str, seconds: float, later: str
) -> None:
    found = store.conn.execute(f"SELECT {store.dialect.seconds_after('?1', '?2')}", (moment, seconds)).fetchone()[0]
    assert found == later


def test_seconds_may_be_an_sql_expression_over_columns(store: Store) -> None:
    sql = f"SELECT {store.dialect.seconds_after('?', 'CASE WHEN 1 = 1 THEN 30 * (1 << 2) ELSE 0 END')}"
    assert store.conn.execute(sql, ("2026-12-06T08:00:00.000Z",)).fetchone()[0] == "2026-12-06T08:02:00.000Z"
