"""The embedded Store: one SQLite file, safe for several processes on one host.

Each table has real columns for what is looked up, ordered or constrained, and a `doc`
column with the whole record as JSON (the source of truth when reading). Every
read-modify-write runs in a `BEGIN IMMEDIATE` transaction, which takes the database's
write lock up front, so conditional updates are atomic across connections and processes;
WAL lets readers go on meanwhile, and `busy_timeout` makes writers queue rather than
fail. All SQLite work runs on one worker thread that owns this store's connection, so
the event loop never blocks on disk or on a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from switchboard_shared.adapters.paging import (
    Position,
    check_limit,
    decode_cursor,
    split_page,
    to_millis,
)
from switchboard_shared.adapters.store_records import (
    as_stored,
    guards_hold,
    holder_keeps_key,
    stored_changes,
    stored_document,
    stored_expectations,
    stored_now,
)
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import (
    TERMINAL_STATUSES,
    Call,
    CallFilter,
    CallPage,
    CallStatus,
    Usage,
    utcnow,
)
from switchboard_shared.domain.tenants import ApiKey, Tenant
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import AlreadyExists, StoreError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_SCHEMA = """
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
    doc TEXT NOT NULL,
    UNIQUE (event_id, url)
);
CREATE INDEX IF NOT EXISTS deliveries_by_tenant_created
    ON deliveries (tenant_id, created_at DESC, delivery_id DESC);
"""


@dataclass(frozen=True)
class _Table:
    """A table holding one model: its key, the fields mirrored into columns, and `doc`."""

    name: str
    model: type[BaseModel]
    key: str
    columns: tuple[str, ...]

    def row(self, document: Mapping[str, Any]) -> dict[str, Any]:
        values = {column: _column_value(document.get(column)) for column in self.columns}
        values["doc"] = json.dumps(document, default=_json_default, separators=(",", ":"))
        return values


def _column_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_millis(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


TENANTS = _Table("tenants", Tenant, "tenant_id", ("tenant_id", "name"))
API_KEYS = _Table("api_keys", ApiKey, "key_id", ("key_id", "tenant_id", "key_hash", "created_at"))
AGENTS = _Table("agents", Agent, "key", ("key",))
CALLS = _Table(
    "calls",
    Call,
    "call_id",
    (
        "call_id",
        "tenant_id",
        "status",
        "agent",
        "created_at",
        "updated_at",
        "provider",
        "provider_call_id",
        "idempotency_key",
        "sequence",
        "publish_pending",
        "duration",
        "watchdog_deadline",
        "notify_pending",
    ),
)
ENDPOINTS = _Table("webhook_endpoints", WebhookEndpoint, "tenant_id", ("tenant_id",))
DELIVERIES = _Table(
    "deliveries",
    Delivery,
    "delivery_id",
    (
        "delivery_id",
        "tenant_id",
        "event_id",
        "url",
        "call_id",
        "status",
        "event_type",
        "created_at",
    ),
)


# Columns added after a table was first created: files from older versions get them on
# open (their rows keep NULL, which is also what the model's default says).
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "calls": {
        "watchdog_deadline": "INTEGER",
        "notify_pending": "INTEGER NOT NULL DEFAULT 0",
    }
}


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not present:
            continue  # a new file: _SCHEMA creates the table whole
        for name, kind in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _insert(conn: sqlite3.Connection, table: _Table, document: Mapping[str, Any]) -> None:
    """Insert a row; AlreadyExists when a unique column is taken."""
    row = table.row(document)
    names = ", ".join(row)
    marks = ", ".join(f":{n}" for n in row)
    try:
        conn.execute(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", row)  # noqa: S608
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(f"{table.name}: {exc}") from exc


def _replace(conn: sqlite3.Connection, table: _Table, document: Mapping[str, Any]) -> None:
    row = table.row(document)
    sets = ", ".join(f"{n} = :{n}" for n in row if n != table.key)
    conn.execute(f"UPDATE {table.name} SET {sets} WHERE {table.key} = :{table.key}", row)  # noqa: S608


def _one(conn: sqlite3.Connection, table: _Table, where: str, params: Sequence[Any]) -> Any | None:
    found = conn.execute(
        f"SELECT doc FROM {table.name} WHERE {where}",  # noqa: S608
        params,
    ).fetchone()
    return None if found is None else table.model.model_validate_json(found[0])


def _many(conn: sqlite3.Connection, model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    return [model.model_validate_json(doc) for (doc,) in conn.execute(sql, params)]


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction holding the write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteStore:
    """Store adapter for a SQLite file at `path` (parent directories are created)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Open the file (creating it and its directory), switch to WAL, create tables."""
        if self._conn is not None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self._path.parent}: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._open)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreError(f"cannot open {self._path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only the worker thread uses it, but close() joins
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL survives a process crash; only power loss can lose the
            # last commits, and it never corrupts the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            with _immediate(conn):
                _add_missing_columns(conn)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        self._conn, self._executor = None, None
        if conn is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` on the worker thread; driver errors become StoreError."""
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise StoreError("the SQLite store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, operation, conn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    # --- tenants & keys ------------------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> Tenant:
        stored = as_stored(tenant)

        def op(conn: sqlite3.Connection) -> Tenant:
            _insert(conn, TENANTS, stored_document(stored))
            return stored

        return await self._run(op)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._run(lambda c: _one(c, TENANTS, "tenant_id = ?", (tenant_id,)))

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        return await self._run(lambda c: _one(c, TENANTS, "name = ?", (name,)))

    async def add_api_key(self, key: ApiKey) -> ApiKey:
        stored = as_stored(key)

        def op(conn: sqlite3.Connection) -> ApiKey:
            _insert(conn, API_KEYS, stored_document(stored))
            return stored

        return await self._run(op)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return await self._run(lambda c: _one(c, API_KEYS, "key_hash = ?", (key_hash,)))

    async def revoke_api_key(self, key_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with _immediate(conn):
                key = _one(conn, API_KEYS, "key_id = ?", (key_id,))
                if key is None or key.revoked_at is not None:
                    return False
                _replace(conn, API_KEYS, stored_document(key) | {"revoked_at": stored_now()})
                return True

        return await self._run(op)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        sql = "SELECT doc FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id"
        return await self._run(lambda c: _many(c, ApiKey, sql, (tenant_id,)))

    # --- agents ----------------------------------------------------------------------------
    async def upsert_agent(self, agent: Agent) -> None:
        row = AGENTS.row(stored_document(agent))
        sql = (
            "INSERT INTO agents (key, doc) VALUES (:key, :doc) "
            "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc"
        )
        await self._run(lambda c: c.execute(sql, row))

    async def get_agent(self, key: str) -> Agent | None:
        return await self._run(lambda c: _one(c, AGENTS, "key = ?", (key,)))

    async def list_agents(self) -> list[Agent]:
        return await self._run(lambda c: _many(c, Agent, "SELECT doc FROM agents ORDER BY key", ()))

    # --- calls -------------------------------------------------------------------------------
    async def insert_call(self, call: Call, idempotency_ttl_seconds: float) -> tuple[Call, bool]:
        stored = as_stored(call)

        def op(conn: sqlite3.Connection) -> tuple[Call, bool]:
            with _immediate(conn):
                if stored.idempotency_key is not None:
                    holder = _one(
                        conn,
                        CALLS,
                        "tenant_id = ? AND idempotency_key = ?",
                        (stored.tenant_id, stored.idempotency_key),
                    )
                    if holder is not None:
                        if holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
                            return holder, False
                        released = stored_document(holder) | {"idempotency_key": None}
                        _replace(conn, CALLS, released)
                _insert(conn, CALLS, stored_document(stored))
                return stored, True

        return await self._run(op)

    async def get_call(self, call_id: str, tenant_id: str | None = None) -> Call | None:
        if tenant_id is None:
            return await self._run(lambda c: _one(c, CALLS, "call_id = ?", (call_id,)))
        return await self._run(
            lambda c: _one(c, CALLS, "call_id = ? AND tenant_id = ?", (call_id, tenant_id))
        )

    async def find_call_by_provider_id(self, provider: str, provider_call_id: str) -> Call | None:
        where = "provider = ? AND provider_call_id = ? ORDER BY created_at DESC LIMIT 1"
        return await self._run(lambda c: _one(c, CALLS, where, (provider, provider_call_id)))

    async def list_calls(
        self, tenant_id: str, filters: CallFilter, limit: int, cursor: str | None
    ) -> CallPage:
        check_limit(limit)
        after = decode_cursor("calls", cursor) if cursor is not None else None
        where, params = ["tenant_id = ?"], [tenant_id]
        if filters.status is not None:
            where.append("status = ?")
            params.append(filters.status.value)
        if filters.agent is not None:
            where.append("agent = ?")
            params.append(filters.agent)
        if filters.created_after is not None:
            where.append("created_at > ?")
            params.append(to_millis(filters.created_after))
        if filters.created_before is not None:
            where.append("created_at < ?")
            params.append(to_millis(filters.created_before))
        if after is not None:
            where.append("(created_at, call_id) < (?, ?)")
            params += [to_millis(after.created_at), after.id]
        sql = (
            f"SELECT doc FROM calls WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY created_at DESC, call_id DESC LIMIT ?"
        )
        calls = await self._run(lambda c: _many(c, Call, sql, [*params, limit + 1]))
        page, next_cursor = split_page(
            "calls", calls, limit, lambda call: Position(call.created_at, call.call_id)
        )
        return CallPage(calls=page, next_cursor=next_cursor)

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        expected_statuses: frozenset[CallStatus] | None = None,
        expected: Mapping[str, Any] | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """As `Store.update_call`; an `updated_at` in `changes` is kept (else: now)."""
        fields = stored_changes(changes)
        guard = stored_expectations(expected)
        if bump_sequence and "sequence" in fields:
            raise ValueError("bump_sequence and an explicit sequence exclude each other")

        def op(conn: sqlite3.Connection) -> Call | None:
            with _immediate(conn):
                current = _one(conn, CALLS, "call_id = ?", (call_id,))
                if current is None:
                    return None
                document = stored_document(current)
                if not guards_hold(document, expected_statuses, guard):
                    return None
                document.update(fields)
                document["updated_at"] = fields.get("updated_at", stored_now())
                if bump_sequence:
                    document["sequence"] += 1
                    document["publish_pending"] = True
                updated = Call.model_validate(document)
                _replace(conn, CALLS, stored_document(updated))
                return updated

        return await self._run(op)

    async def mark_published(self, call_id: str, sequence: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                call = _one(conn, CALLS, "call_id = ? AND sequence = ?", (call_id, sequence))
                if call is not None and call.publish_pending:
                    _replace(conn, CALLS, stored_document(call) | {"publish_pending": False})

        await self._run(op)

    async def find_calls(
        self,
        *,
        statuses: frozenset[CallStatus] | None = None,
        updated_before: datetime | None = None,
        publish_pending: bool | None = None,
        deadline_before: datetime | None = None,
        notify_pending: bool | None = None,
        limit: int = 100,
    ) -> list[Call]:
        check_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            ordered = sorted(s.value for s in statuses)
            where.append(f"status IN ({', '.join('?' * len(ordered))})")
            params += ordered
        if updated_before is not None:
            where.append("updated_at < ?")
            params.append(to_millis(updated_before))
        if publish_pending is not None:
            where.append("publish_pending = ?")
            params.append(int(publish_pending))
        if deadline_before is not None:
            where.append("watchdog_deadline < ?")
            params.append(to_millis(deadline_before))
        if notify_pending is not None:
            where.append("notify_pending = ?")
            params.append(int(notify_pending))
        sql = (
            f"SELECT doc FROM calls WHERE {' AND '.join(where) or '1'} "  # noqa: S608
            "ORDER BY updated_at, call_id LIMIT ?"
        )
        return await self._run(lambda c: _many(c, Call, sql, [*params, limit]))

    async def usage(self, tenant_id: str) -> Usage:
        """Totals of the tenant's calls; `by_status` has every status, zeros included."""
        sql = (
            "SELECT status, COUNT(*), COALESCE(SUM(duration), 0) FROM calls "
            "WHERE tenant_id = ? GROUP BY status"
        )
        rows = await self._run(lambda c: c.execute(sql, (tenant_id,)).fetchall())
        by_status = {s.value: 0 for s in CallStatus}
        seconds = 0
        for status, count, duration in rows:
            by_status[status] = count
            seconds += duration
        terminal = {s.value for s in TERMINAL_STATUSES}
        return Usage(
            total_calls=sum(by_status.values()),
            total_seconds=seconds,
            active_calls=sum(n for s, n in by_status.items() if s not in terminal),
            by_status=by_status,
        )

    # --- webhook endpoints -------------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        row = ENDPOINTS.row(stored_document(endpoint))
        sql = (
            "INSERT INTO webhook_endpoints (tenant_id, doc) VALUES (:tenant_id, :doc) "
            "ON CONFLICT (tenant_id) DO UPDATE SET doc = excluded.doc"
        )
        await self._run(lambda c: c.execute(sql, row))

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        row = ENDPOINTS.row(stored_document(endpoint))
        insert = (
            "INSERT INTO webhook_endpoints (tenant_id, doc) VALUES (:tenant_id, :doc) "
            "ON CONFLICT (tenant_id) DO NOTHING"
        )

        def create(conn: sqlite3.Connection) -> tuple[WebhookEndpoint, bool]:
            with _immediate(conn):
                created = conn.execute(insert, row).rowcount == 1
                stored = _one(conn, ENDPOINTS, "tenant_id = ?", (endpoint.tenant_id,))
            return stored, created

        return await self._run(create)

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None:
        return await self._run(lambda c: _one(c, ENDPOINTS, "tenant_id = ?", (tenant_id,)))

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool:
        sql = "DELETE FROM webhook_endpoints WHERE tenant_id = ?"
        return await self._run(lambda c: c.execute(sql, (tenant_id,)).rowcount == 1)

    # --- deliveries --------------------------------------------------------------------------
    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        stored = as_stored(delivery)

        def op(conn: sqlite3.Connection) -> tuple[Delivery, bool]:
            with _immediate(conn):
                existing = _one(
                    conn, DELIVERIES, "event_id = ? AND url = ?", (stored.event_id, stored.url)
                )
                if existing is not None:
                    return existing, False
                _insert(conn, DELIVERIES, stored_document(stored))
                return stored, True

        return await self._run(op)

    async def get_delivery(self, delivery_id: str, tenant_id: str | None = None) -> Delivery | None:
        if tenant_id is None:
            where, params = "delivery_id = ?", (delivery_id,)
        else:
            where, params = "delivery_id = ? AND tenant_id = ?", (delivery_id, tenant_id)
        return await self._run(lambda c: _one(c, DELIVERIES, where, params))

    async def record_attempt(
        self, delivery_id: str, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> Delivery | None:
        def op(conn: sqlite3.Connection) -> Delivery | None:
            with _immediate(conn):
                delivery = _one(conn, DELIVERIES, "delivery_id = ?", (delivery_id,))
                if delivery is None:
                    return None
                document = stored_document(delivery)
                document["attempts"].append(stored_document(attempt))
                document["status"] = status.value
                document["updated_at"] = stored_now()
                updated = Delivery.model_validate(document)
                _replace(conn, DELIVERIES, stored_document(updated))
                return updated

        return await self._run(op)

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        check_limit(limit)
        after = decode_cursor("deliveries", cursor) if cursor is not None else None
        where, params = ["tenant_id = ?"], [tenant_id]
        for column, value in (
            ("call_id", filters.call_id),
            ("event_id", filters.event_id),
            ("status", filters.status.value if filters.status is not None else None),
            ("event_type", filters.event_type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if after is not None:
            where.append("(created_at, delivery_id) < (?, ?)")
            params += [to_millis(after.created_at), after.id]
        sql = (
            f"SELECT doc FROM deliveries WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY created_at DESC, delivery_id DESC LIMIT ?"
        )
        found = await self._run(lambda c: _many(c, Delivery, sql, [*params, limit + 1]))
        page, next_cursor = split_page(
            "deliveries", found, limit, lambda d: Position(d.created_at, d.delivery_id)
        )
        return DeliveryPage(deliveries=page, next_cursor=next_cursor)
