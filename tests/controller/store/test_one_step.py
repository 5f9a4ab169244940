"""Rows packed into one JSON parameter: the same text however many pieces the encoder wrote it in, and read back
member by member, each in its column's type, on each engine."""

import json

import pytest

from controller.store import Store
from controller.store.one_step import PACK_PIECE, compact_json, fetch_rows, packed


@pytest.mark.parametrize("count", [0, 1, PACK_PIECE - 1, PACK_PIECE, PACK_PIECE + 1, 3 * PACK_PIECE + 7])
def test_packed_rows_read_back_as_they_were_whatever_their_number(store: Store, count: int) -> None:
    rows = [[f"id-{n}", None, n, 'a quote " and a backslash \\'] for n in range(count)]
    text = packed(rows)
    assert text == compact_json(rows)
    dialect = store.dialect
    members = dialect.members(enumerate(("command_id", "result", "progress", "failure_reason")))
    read = fetch_rows(
        store.conn,
        f"""SELECT {dialect.array_of_arrays("command_id, result, progress, failure_reason")}
            FROM (SELECT {members} FROM {dialect.rows("?")}) AS packed_rows""",
        (text,),
    )
    assert sorted(read, key=lambda row: row[2]) == rows  # `progress` is an integer column: read as one


def test_single_values_pack_too() -> None:
    ids = [f"d{n}" for n in range(PACK_PIECE + 1)]
    assert json.loads(packed(ids)) == ids
