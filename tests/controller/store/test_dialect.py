"""Dialect's SQL run on each engine: what it renders reads the same on both."""

import json

import pytest

from controller.store import Store
from controller.store.one_step import fetch_rows, packed

# -- typed_values, json_object_has, array_of_arrays' order (helper h1) --------------------------------------------


def test_typed_values_compare_as_the_columns_type(store: Store) -> None:
    marked = store.dialect.typed_values("?", "seq")
    found = store.conn.execute(f"SELECT 7 IN ({marked}), 8 IN ({marked})", (packed([7, 9]), packed([7, 9])))
    assert [bool(value) for value in found.fetchone()] == [True, False]


def test_json_object_has_a_key_whatever_its_value_and_nothing_has_one_in_null(store: Store) -> None:
    has = store.dialect.json_object_has("?1", "?2")
    for document, key, expected in (
        ({"a": 1, "b": None}, "a", True),
        ({"a": 1, "b": {"c": 2}}, "b", True),
        ({"a": 1}, "c", False),
        ({"a.b": 1}, "a.b", True),
        (None, "a", False),
    ):
        stored = None if document is None else json.dumps(document)
        row = store.conn.execute(f"SELECT CASE WHEN {has} THEN 1 ELSE 0 END", (stored, key)).fetchone()
        assert row[0] == expected, (document, key)


def test_array_of_arrays_keeps_the_order_asked_for(store: Store) -> None:
    ids = [f"d{n:03}" for n in range(200)]
    rows = store.dialect.rows("?")
    aggregated = store.dialect.array_of_arrays("id", order="id")
    found = fetch_rows(
        store.conn,
        f"SELECT {aggregated} FROM (SELECT value AS id FROM {rows} ORDER BY value LIMIT 150) AS page",
        (packed(list(reversed(ids))),),
    )
    assert found == [[id_] for id_ in ids[:150]]


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
