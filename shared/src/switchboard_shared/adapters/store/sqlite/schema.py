"""The SQLite tables and indexes, and the columns added to files from older versions.

Each table has real columns for what is looked up, ordered or constrained, and a `doc`
column with the whole record as JSON (the source of truth when reading; see `rows`).
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS provider_breakers (
    provider TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    agent TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    provider TEXT,
    provider_call_id TEXT,
    idempotency_key TEXT,
    sequence INTEGER NOT NULL,
    publish_pending INTEGER NOT NULL,
    duration INTEGER,
    watchdog_deadline INTEGER,
    notify_pending INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    batch_id TEXT,
    waiting_lane TEXT,
    waiting_since INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_tenant_created
    ON calls (tenant_id, created_at DESC, call_id DESC);
CREATE INDEX IF NOT EXISTS calls_by_tenant_status_created
    ON calls (tenant_id, status, created_at DESC, call_id DESC);
CREATE INDEX IF NOT EXISTS calls_by_tenant_agent_created
    ON calls (tenant_id, agent, created_at DESC, call_id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS calls_by_idempotency_key
    ON calls (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_by_provider_call ON calls (provider, provider_call_id);
CREATE INDEX IF NOT EXISTS calls_by_pending ON calls (publish_pending, updated_at);
CREATE INDEX IF NOT EXISTS calls_by_status_updated ON calls (status, updated_at);
CREATE INDEX IF NOT EXISTS calls_by_status_deadline ON calls (status, watchdog_deadline);
CREATE INDEX IF NOT EXISTS calls_by_notify_pending ON calls (notify_pending, updated_at);
CREATE INDEX IF NOT EXISTS calls_by_status_next_attempt ON calls (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS calls_by_batch_status ON calls (batch_id, status)
    WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_by_tenant_batch_created
    ON calls (tenant_id, batch_id, created_at DESC, call_id DESC) WHERE batch_id IS NOT NULL;
-- Calls waiting for a slot: by lane, oldest waiting first, and every lane's oldest.
CREATE INDEX IF NOT EXISTS calls_by_waiting_lane ON calls (waiting_lane, waiting_since)
    WHERE waiting_lane IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_by_waiting_since ON calls (waiting_since)
    WHERE waiting_since IS NOT NULL;
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    idempotency_key TEXT,
    completed_at INTEGER,
    state TEXT,
    started_at INTEGER,
    first_due INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_open ON batches (created_at) WHERE completed_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_idempotency_key
    ON batches (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_by_tenant_created
    ON batches (tenant_id, created_at DESC, batch_id DESC);
UPDATE batches SET state = json_extract(doc, '$.state') WHERE state IS NULL;
CREATE TABLE IF NOT EXISTS blocked_numbers (
    tenant_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);
CREATE INDEX IF NOT EXISTS blocked_numbers_by_tenant_created
    ON blocked_numbers (tenant_id, created_at DESC, phone DESC);
CREATE TABLE IF NOT EXISTS tenant_configs (
    tenant_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    alive_until INTEGER,
    duration INTEGER,
    idempotency_key TEXT,
    notify_pending INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    provider TEXT,
    provider_session_id TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_tenant_started
    ON sessions (tenant_id, started_at DESC, session_id DESC);
CREATE INDEX IF NOT EXISTS sessions_by_tenant_status_started
    ON sessions (tenant_id, status, started_at DESC, session_id DESC);
-- One active session per API key, whoever inserts it.
CREATE UNIQUE INDEX IF NOT EXISTS sessions_active_by_key
    ON sessions (api_key_id) WHERE status = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS sessions_by_idempotency_key
    ON sessions (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_by_status_expiry ON sessions (status, expires_at);
CREATE INDEX IF NOT EXISTS sessions_by_status_alive ON sessions (status, alive_until);
CREATE INDEX IF NOT EXISTS sessions_by_notify_pending ON sessions (notify_pending, updated_at);
-- A provider's session webhook names the session by the provider's id.
CREATE INDEX IF NOT EXISTS sessions_by_provider_session
    ON sessions (provider, provider_session_id) WHERE provider_session_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS used_join_tokens (
    token_id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
-- Counted slots: one row per holder of a scope's slot (no `doc`: nothing else to keep).
CREATE TABLE IF NOT EXISTS slots (
    scope TEXT NOT NULL,
    holder TEXT NOT NULL,
    taken_at INTEGER NOT NULL,
    PRIMARY KEY (scope, holder)
);
CREATE INDEX IF NOT EXISTS slots_by_holder ON slots (holder);
CREATE INDEX IF NOT EXISTS slots_by_taken_at ON slots (taken_at);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    tenant_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    url TEXT NOT NULL,
    call_id TEXT,
    status TEXT NOT NULL,
    event_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER,
    doc TEXT NOT NULL,
    UNIQUE (event_id, url)
);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant_created
    ON deliveries (tenant_id, created_at DESC, delivery_id DESC);
-- Listings by event (the notifier, on every event), call and status: without these the
-- tenant's whole delivery log was walked in created order to find them.
CREATE INDEX IF NOT EXISTS deliveries_by_tenant_event
    ON deliveries (tenant_id, event_id, created_at DESC, delivery_id DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant_call
    ON deliveries (tenant_id, call_id, created_at DESC, delivery_id DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant_status
    ON deliveries (tenant_id, status, created_at DESC, delivery_id DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_due
    ON deliveries (status, next_attempt_at, delivery_id);
"""

# Columns added after a table was first created: files from older versions get them on
# open (their rows keep NULL, which is also what the model's default says).
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "calls": {
        "watchdog_deadline": "INTEGER",
        "notify_pending": "INTEGER NOT NULL DEFAULT 0",
        "next_attempt_at": "INTEGER",
        "batch_id": "TEXT",
        # Rows of older files have no waiting call: NULL is right for them.
        "waiting_lane": "TEXT",
        "waiting_since": "INTEGER",
    },
    "deliveries": {"next_attempt_at": "INTEGER"},
    "sessions": {"provider": "TEXT", "provider_session_id": "TEXT"},
    # The listing filters on them; rows of older files get them back from `doc`.
    "batches": {"state": "TEXT", "started_at": "INTEGER", "first_due": "INTEGER"},
}


def create_schema(conn: sqlite3.Connection) -> None:
    """Bring the file's tables up to date, idempotently (run it in a write transaction):
    older tables get their missing columns first, since the indexes may name them."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not present:
            continue  # a new file: SCHEMA creates the table whole
        for name, kind in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
