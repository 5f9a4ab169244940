"""Rows packed into one JSON parameter: the same text however many pieces the encoder wrote it in."""

import json
import sqlite3

import pytest

from controller.store.one_step import PACK_PIECE, compact_json, packed


@pytest.mark.parametrize("count", [0, 1, PACK_PIECE - 1, PACK_PIECE, PACK_PIECE + 1, 3 * PACK_PIECE + 7])
def test_packed_rows_read_back_as_they_were_whatever_their_number(count: int) -> None:
    rows = [[f"id-{n}", None, n, 'a quote " and a backslash \\'] for n in range(count)]
    text = packed(rows)
    assert text == compact_json(rows)
    conn = sqlite3.connect(":memory:")
    try:
        read = conn.execute("SELECT json_group_array(json(value)) FROM json_each(?)", (text,)).fetchone()[0]
    finally:
        conn.close()
    assert json.loads(read) == rows


def test_single_values_pack_too() -> None:
    ids = [f"d{n}" for n in range(PACK_PIECE + 1)]
    assert json.loads(packed(ids)) == ids
