"""Dialect's SQL run on each engine: what it renders reads the same on both."""

import json

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
