"""Files devices upload for a command (screenshots, logs, bug reports): one-time upload tokens and where files are."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.clock import now_iso
from controller.keys import hash_key
from controller.store.connection import Connection
from controller.store.one_step import packed

if TYPE_CHECKING:
    from controller.store import Store


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    command_id: str
    path: str
    size_bytes: int
    sha256: str
    content_type: str
    uploaded_at: str


class ArtifactLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    @property
    def _conn(self) -> Connection:
        return self._store.conn

    def issue_tokens(self, command_ids: Sequence[str]) -> dict[str, str]:
        """A fresh upload token per command; only its hash is kept."""
        tokens = {command_id: "tta_" + secrets.token_urlsafe(24) for command_id in command_ids}
        dialect = self._store.dialect
        with self._store.transaction() as conn:
            conn.execute(
                f"""INSERT INTO artifacts (command_id, token_hash)
                        SELECT {dialect.members([(0, "command_id"), (1, "token_hash")])} FROM {dialect.rows("?")}
                        WHERE true
                    ON CONFLICT (command_id) DO UPDATE SET token_hash = excluded.token_hash""",
                (packed([(command_id, hash_key(token)) for command_id, token in tokens.items()]),),
            )
        return tokens

    def command_for_token(self, operation_id: str, device_id: str, token: str) -> str | None:
        """The command the token was issued for, if it belongs to this operation and device."""
        row = self._conn.execute(
            """SELECT a.command_id FROM artifacts a JOIN device_operations d ON d.command_id = a.command_id
               WHERE a.token_hash = ? AND d.operation_id = ? AND d.device_id = ?""",
            (hash_key(token), operation_id, device_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def record_upload(self, command_id: str, *, path: str, size_bytes: int, sha256: str, content_type: str) -> None:
        """Keep the file's details and retire the token: an artifact is uploaded once."""
        with self._store.transaction() as conn:
            conn.execute(
                """UPDATE artifacts SET token_hash = NULL, path = ?, size_bytes = ?, sha256 = ?, content_type = ?,
                       uploaded_at = ? WHERE command_id = ?""",
                (path, size_bytes, sha256, content_type, now_iso(), command_id),
            )

    def find(self, operation_id: str, device_id: str) -> ArtifactRecord | None:
        row = self._conn.execute(
            """SELECT a.command_id, a.path, a.size_bytes, a.sha256, a.content_type, a.uploaded_at
               FROM artifacts a JOIN device_operations d ON d.command_id = a.command_id
               WHERE d.operation_id = ? AND d.device_id = ? AND a.path IS NOT NULL""",
            (operation_id, device_id),
        ).fetchone()
        return None if row is None else ArtifactRecord(*row)
