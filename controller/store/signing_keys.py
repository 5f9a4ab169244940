"""The signing keys the fleet has been given, by id with their public halves: what a controller's own must be one of
(controller/fleet_keys.py). Private keys stay in files, never here."""

from collections.abc import Mapping
from typing import TYPE_CHECKING

from controller.clock import now_iso
from controller.store.records import FleetSigningKey

if TYPE_CHECKING:
    from controller.store import Store


class SigningKeyLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def recorded(self) -> dict[str, FleetSigningKey]:
        """Every key recorded, by id, oldest first (to the millisecond; those of one millisecond by id)."""
        rows = self._store.conn.execute(
            "SELECT key_id, public_key, recorded_at FROM signing_keys ORDER BY recorded_at, key_id"
        ).fetchall()
        return {row["key_id"]: FleetSigningKey(**dict(row)) for row in rows}

    def record(self, public_keys: Mapping[str, str]) -> None:
        """Record each key (id to public key) not recorded yet; one recorded already keeps its row."""
        recorded_at = now_iso()
        with self._store.transaction() as conn:
            conn.executemany(
                "INSERT INTO signing_keys (key_id, public_key, recorded_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key_id) DO NOTHING",
                [(key_id, public, recorded_at) for key_id, public in public_keys.items()],
            )
