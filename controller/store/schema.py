"""The SQLite schema as of the baseline migration (controller/store/migrations.py), what it takes to bring a
database from before numbered migrations up to it, and the tables of later migrations."""

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    time_zone TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    platform TEXT,
    agent_version TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    time_zone TEXT,
    inventory TEXT NOT NULL DEFAULT '{}',
    capabilities TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    groups_ TEXT NOT NULL DEFAULT '[]',
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    presence_changed_at TEXT
);
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    operation_type TEXT NOT NULL,
    state TEXT NOT NULL,
    schedule_type TEXT NOT NULL,
    schedule_args TEXT,
    device_query TEXT NOT NULL,
    arguments TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    timeout_s INTEGER,
    delivery_timeout_s INTEGER,
    rollout TEXT,
    stop_reason TEXT,
    dispatch_started_at TEXT,
    fragments TEXT,
    description TEXT,
    fragment_type TEXT
);
CREATE INDEX IF NOT EXISTS operations_by_state ON operations (state, seq);
CREATE INDEX IF NOT EXISTS operations_by_type ON operations (operation_type, seq);
CREATE TABLE IF NOT EXISTS operation_activity (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id TEXT NOT NULL,
    operation_state TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    message TEXT,
    state TEXT
);
CREATE INDEX IF NOT EXISTS activity_by_operation ON operation_activity (operation_id, seq);
CREATE TABLE IF NOT EXISTS device_operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL UNIQUE,
    operation_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL,
    dispatch_state TEXT NOT NULL DEFAULT 'waiting',
    cleared INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    dispatched_at TEXT,
    received_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    result TEXT,
    failure_reason TEXT,
    progress INTEGER,
    deadline_at TEXT,
    deadline_reason TEXT,
    cancel_reason TEXT,
    cancel_sent INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    window_end TEXT,
    window_zone TEXT,
    hidden INTEGER NOT NULL DEFAULT 0,
    updated_fragments TEXT,
    UNIQUE (operation_id, device_id)
);
-- The last moment the controller was connected to its broker: deadlines count only connected time.
CREATE TABLE IF NOT EXISTS hearing (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    heard_at TEXT NOT NULL
);
-- Cancellations published and not yet confirmed by their device (controller/store/cancellations.py).
CREATE TABLE IF NOT EXISTS unconfirmed_cancellations (
    command_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    until TEXT NOT NULL,
    next_at TEXT NOT NULL,
    sends INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unconfirmed_cancellations_by_device ON unconfirmed_cancellations (device_id);
CREATE INDEX IF NOT EXISTS unconfirmed_cancellations_due ON unconfirmed_cancellations (next_at);
CREATE TABLE IF NOT EXISTS artifacts (
    command_id TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE,
    path TEXT,
    size_bytes INTEGER,
    sha256 TEXT,
    content_type TEXT,
    uploaded_at TEXT
);
DROP INDEX IF EXISTS device_operations_by_status;
CREATE INDEX IF NOT EXISTS device_operations_by_operation_status ON device_operations (operation_id, status);
-- An operation's devices in seq (rowid) order, for paging through them without sorting the whole operation.
CREATE INDEX IF NOT EXISTS device_operations_by_operation ON device_operations (operation_id);
CREATE TABLE IF NOT EXISTS operation_counts (
    operation_id TEXT PRIMARY KEY,
    resolved INTEGER NOT NULL DEFAULT 0,
    dispatched INTEGER NOT NULL DEFAULT 0,
    dispatch_failed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    success INTEGER NOT NULL DEFAULT 0,
    waiting INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    executing INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS device_operations_waiting ON device_operations (operation_id, not_before)
    WHERE dispatch_state = 'waiting';
CREATE INDEX IF NOT EXISTS device_operations_due ON device_operations (operation_id, seq)
    WHERE dispatch_state = 'waiting';
CREATE INDEX IF NOT EXISTS device_operations_by_deadline ON device_operations (deadline_at)
    WHERE status IN ('PENDING', 'EXECUTING') AND deadline_at IS NOT NULL;
-- A device's unfinished commands in order: what a command sent to it is queued behind (CommandLedger).
CREATE INDEX IF NOT EXISTS device_operations_unfinished_by_device ON device_operations (device_id, seq)
    WHERE status IN ('PENDING', 'EXECUTING');
CREATE INDEX IF NOT EXISTS device_operations_windows_by_device ON device_operations (device_id)
    WHERE window_end IS NOT NULL AND status = 'PENDING';
CREATE INDEX IF NOT EXISTS device_operations_to_cancel ON device_operations (cancel_sent)
    WHERE cancel_reason IS NOT NULL AND cancel_sent = 0;
CREATE INDEX IF NOT EXISTS device_operations_to_clear ON device_operations (cleared, status)
    WHERE cleared = 0 AND status IN ('SUCCESSFUL', 'FAILED');
"""


SIGNING_KEYS = """
-- The signing keys the fleet has been given: a controller signs only with one of them (controller/fleet_keys.py).
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
"""
"""Migration 3's table, on both engines."""


# Each device row's contribution to its operation's counts, for the row `R` (NEW or OLD) of a trigger.
CONTRIBUTION = {
    "dispatched": "R.dispatch_state = 'dispatched'",
    # A command a client ended SUCCESSFUL before it was published leaves the queue of a stopped operation as
    # 'failed' and stays SUCCESSFUL (shared/lifecycle.py): a success, not a dispatch failure.
    "dispatch_failed": "R.dispatch_state = 'failed' AND R.status = 'FAILED'",
    "failed": "R.status = 'FAILED' AND R.dispatch_state != 'failed'",
    "success": "R.status = 'SUCCESSFUL'",
    "waiting": "R.status = 'PENDING' AND R.dispatch_state = 'waiting'",
    "pending": "R.status = 'PENDING' AND R.dispatch_state != 'waiting'",
    "executing": "R.status = 'EXECUTING'",
}


def _rule(name: str, row: str) -> str:
    return CONTRIBUTION[name].replace("R.", f"{row}.")


def _change(*signed_rows: tuple[str, str]) -> str:
    """`count = count + (NEW's part) - (OLD's part)` for every count, as one SET list."""
    return ", ".join(
        f"{name} = {name} " + " ".join(f"{sign} ({_rule(name, row)})" for sign, row in signed_rows)
        for name in CONTRIBUTION
    )


_NAMES = ", ".join(CONTRIBUTION)
COUNT_TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS count_updated_device AFTER UPDATE OF status, dispatch_state ON device_operations
WHEN OLD.status IS NOT NEW.status OR OLD.dispatch_state IS NOT NEW.dispatch_state BEGIN
    UPDATE operation_counts SET {_change(("+", "NEW"), ("-", "OLD"))} WHERE operation_id = NEW.operation_id;
END;
CREATE TRIGGER IF NOT EXISTS count_deleted_device AFTER DELETE ON device_operations BEGIN
    UPDATE operation_counts SET resolved = resolved - 1, {_change(("-", "OLD"))} WHERE operation_id = OLD.operation_id;
END;
"""
"""An operation's device counts, kept by SQLite itself as rows change: every writer of device_operations keeps them
right without knowing, and reading them costs one row instead of a scan of the operation's devices. Rows are
inserted in one place only, CommandLedger.resolve, which counts what it inserts itself: a trigger per inserted row
doubled the cost of resolving 100,000 devices."""

DROPPED_TRIGGERS = "DROP TRIGGER IF EXISTS count_inserted_device;"
"""Triggers of earlier versions."""
REDEFINED_TRIGGERS = "DROP TRIGGER IF EXISTS count_updated_device;\nDROP TRIGGER IF EXISTS count_deleted_device;\n"
"""The count triggers as an earlier version defined them, to be created again from COUNT_TRIGGERS."""

CLEARS_OWED = """
CREATE TABLE IF NOT EXISTS clears_owed (
    command_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO clears_owed (command_id, device_id)
    SELECT command_id, device_id FROM device_operations WHERE cleared = 0 AND status IN ('SUCCESSFUL', 'FAILED')
    ON CONFLICT DO NOTHING;
DROP INDEX IF EXISTS device_operations_to_clear;
"""
"""Finished commands whose retained message may still be on the broker: the clears the controller owes (migration
5). Each used to be a finished row of device_operations with `cleared = 0`, found by an index, and the clear wrote
the row once more: on PostgreSQL a new row version and an entry in each of the table's indexes, a quarter of a
command's writes. Now a clear deletes a narrow row; `cleared = 1` says only that a command was never published."""

OWE_CLEARS_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS owe_clear AFTER UPDATE OF status ON device_operations
WHEN NEW.cleared = 0 AND NEW.status IN ('SUCCESSFUL', 'FAILED') AND OLD.status NOT IN ('SUCCESSFUL', 'FAILED') BEGIN
    INSERT OR IGNORE INTO clears_owed (command_id, device_id) VALUES (NEW.command_id, NEW.device_id);
END;
"""
"""A command that finishes owes its clear, whoever finished it (a device, a deadline, a stop, a client)."""

_SUMS = ", ".join(f"coalesce(sum({rule.replace('R.', '')}), 0)" for rule in CONTRIBUTION.values())
RECOUNT = f"""
INSERT INTO operation_counts (operation_id, resolved, {_NAMES})
SELECT operation_id, count(*), {_SUMS} FROM device_operations GROUP BY operation_id
"""
"""Counts from scratch, for a database made before operation_counts existed."""


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


ADDED_COLUMNS = {
    "api_keys": ("time_zone TEXT",),
    "operation_activity": ("state TEXT",),
    "operations": (
        "timeout_s INTEGER",
        "delivery_timeout_s INTEGER",
        "rollout TEXT",
        "stop_reason TEXT",
        "dispatch_started_at TEXT",
        "fragments TEXT",
        "description TEXT",
        "fragment_type TEXT",
    ),
    "device_operations": (
        "deadline_at TEXT",
        "deadline_reason TEXT",
        "cancel_reason TEXT",
        "cancel_sent INTEGER NOT NULL DEFAULT 0",
        "not_before TEXT",
        "window_end TEXT",
        "window_zone TEXT",
        "hidden INTEGER NOT NULL DEFAULT 0",
        "updated_fragments TEXT",
    ),
}
"""Columns added since the first release: a database created before them gets them on open."""


def add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, columns in ADDED_COLUMNS.items():
        present = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not present:
            continue  # a new database: SCHEMA creates the table whole
        for column in columns:
            if column.split()[0] not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
