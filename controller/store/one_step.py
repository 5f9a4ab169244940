"""Many rows through one step: they go in as one JSON array (Dialect.rows) and come out as one (fetch_rows).

Python's sqlite3 releases the GIL around every step of a statement and takes it back after. While another thread
runs Python (the REST API's thread, or the main loop beside it), each retake waits up to a switch interval: measured
here, a 500-row executemany took 196 ms beside a busy thread instead of 3 ms, and a 500-row SELECT fetches the same
way. A statement that moves all its rows in one step waits once.
"""

import json
from collections.abc import Sequence
from typing import Any

from controller.store.connection import Connection

compact_json = json.JSONEncoder(separators=(",", ":")).encode
"""JSON without spaces; `json.dumps` with separators builds an encoder per call (~0.7 µs, once per status)."""


PACK_PIECE = 5_000
"""Rows encoded per call of the C encoder, which keeps the GIL throughout: 100,000 rows in one call held it from the
REST API's thread for ~90 ms while an operation resolved."""


def packed(rows: Sequence[Sequence[Any]] | Sequence[Any]) -> str:
    """Rows (or single values) as the one JSON parameter `Dialect.rows` (or `.values`) reads."""
    if len(rows) <= PACK_PIECE:
        return compact_json(rows)
    pieces = (compact_json(rows[start : start + PACK_PIECE])[1:-1] for start in range(0, len(rows), PACK_PIECE))
    return f"[{','.join(pieces)}]"


def fetch_rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[list[Any]]:
    """Run a SELECT whose one column is an array of arrays (Dialect.array_of_arrays); its rows as lists, in one step.
    SQLite returns the array as JSON text, psycopg as the lists it has decoded."""
    row = conn.execute(sql, params).fetchone()
    if row is None or row[0] is None:
        return []
    return json.loads(row[0]) if isinstance(row[0], str) else list(row[0])
