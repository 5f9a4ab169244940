"""API keys in the store: a key's time zone, and a database from before keys had one."""

import sqlite3
from pathlib import Path

from controller.keys import hash_key
from controller.store import Store

OLD_KEYS_TABLE = """CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
)"""


def test_a_key_keeps_its_zone(store: Store) -> None:
    record, plaintext = store.keys.create("berlin-ops", "admin", "Europe/Berlin")
    assert record.time_zone == "Europe/Berlin"
    assert store.keys.find(plaintext) == record
    _, other = store.keys.create("anywhere", "read")
    found = store.keys.find(other)
    assert found is not None
    assert found.time_zone is None


def test_keys_made_before_zones_existed_still_work_and_have_none(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_KEYS_TABLE)
    conn.close()
    store = Store(path)
    try:
        store.conn.execute(
            "INSERT INTO api_keys VALUES ('k1', 'ops', 'admin', ?, '2026-01-01T00:00:00.000Z', NULL)",
            (hash_key("tth_old"),),
        )
        found = store.keys.find("tth_old")
        assert found is not None
        assert (found.name, found.time_zone) == ("ops", None)
        assert store.keys.create("new", "admin", "Asia/Tokyo")[0].time_zone == "Asia/Tokyo"
    finally:
        store.close()
