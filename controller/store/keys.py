"""API keys of the REST API, looked up by the hash of their plaintext."""

import secrets
import uuid
from typing import TYPE_CHECKING

from controller.clock import now_iso
from controller.errors import Conflict
from controller.keys import hash_key
from controller.store.records import ApiKeyRecord

if TYPE_CHECKING:
    from controller.store import Store


class KeyLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def create(self, name: str, role: str, time_zone: str | None = None) -> tuple[ApiKeyRecord, str]:
        """Store a new key and return it with its plaintext, which is shown once and never stored."""
        plaintext = "tth_" + secrets.token_urlsafe(32)
        record = ApiKeyRecord(id=str(uuid.uuid4()), name=name, role=role, created_at=now_iso(), time_zone=time_zone)
        try:
            with self._store.transaction() as conn:
                conn.execute(
                    "INSERT INTO api_keys (id, name, role, key_hash, created_at, time_zone) VALUES (?, ?, ?, ?, ?, ?)",
                    (record.id, name, role, hash_key(plaintext), record.created_at, time_zone),
                )
        except self._store.database.integrity_errors as err:
            raise Conflict(f"an API key named {name!r} already exists") from err
        return record, plaintext

    def find(self, plaintext: str) -> ApiKeyRecord | None:
        row = self._store.conn.execute(
            "SELECT id, name, role, created_at, time_zone FROM api_keys WHERE key_hash = ?", (hash_key(plaintext),)
        ).fetchone()
        return None if row is None else ApiKeyRecord(**dict(row))
