"""How a record becomes a SQLite row and back: the fields each table mirrors into its
columns, the `doc` JSON that holds the whole record, and the few statements every
aggregate builds on."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from switchboard_shared.adapters.store.common.paging import to_millis
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.batches import Batch
from switchboard_shared.domain.blocked_numbers import BlockedNumber
from switchboard_shared.domain.breakers import ProviderBreaker
from switchboard_shared.domain.calls import Call
from switchboard_shared.domain.sessions import Session
from switchboard_shared.domain.tenant_config import TenantConfig
from switchboard_shared.domain.tenants import ApiKey, Tenant
from switchboard_shared.domain.webhooks import Delivery, WebhookEndpoint
from switchboard_shared.ports import AlreadyExists

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Table:
    """A table holding one model: its key, the fields mirrored into columns, and `doc`."""

    name: str
    model: type[BaseModel]
    key: str
    columns: tuple[str, ...]

    def row(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The row's values by column name, `doc` included, for a stored document."""
        values = {column: column_value(document.get(column)) for column in self.columns}
        values["doc"] = _dumps(document)
        return values

    def rows_sharing(
        self, shared: Mapping[str, Any], owns: Iterable[Mapping[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """`row(shared | own)` for each of `owns`, with the shared part turned into
        columns and JSON once rather than per row (a batch's 100,000 calls share all but
        a few fields). Every `own` has the same keys."""
        base: dict[str, Any] | None = None
        prefix = ""
        for own in owns:
            if base is None:
                rest = {k: v for k, v in shared.items() if k not in own}
                base = {column: column_value(shared.get(column)) for column in self.columns}
                # The shared fields' JSON without its closing brace; each row's own
                # fields follow it. Key order does not matter to the reader.
                prefix = _dumps(rest)[:-1] + ("," if rest else "")
            values = dict(base)
            for key, value in own.items():
                if key in values:
                    values[key] = column_value(value)
            values["doc"] = prefix + _dumps(own)[1:]
            yield values


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, default=_json_default, separators=(",", ":"))


def column_value(value: Any) -> Any:
    """A stored value as its column keeps it: datetimes as epoch milliseconds (so they
    compare and sort as numbers), booleans as 0/1."""
    if isinstance(value, datetime):
        return to_millis(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


TENANTS = Table("tenants", Tenant, "tenant_id", ("tenant_id", "name"))
API_KEYS = Table("api_keys", ApiKey, "key_id", ("key_id", "tenant_id", "key_hash", "created_at"))
AGENTS = Table("agents", Agent, "key", ("key",))
BREAKERS = Table("provider_breakers", ProviderBreaker, "provider", ("provider", "version"))
CALLS = Table(
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
        "next_attempt_at",
        "batch_id",
        "waiting_lane",
        "waiting_since",
    ),
)
BATCHES = Table(
    "batches",
    Batch,
    "batch_id",
    (
        "batch_id",
        "tenant_id",
        "created_at",
        "idempotency_key",
        "completed_at",
        "state",
        "started_at",
        "first_due",
    ),
)
BLOCKED_NUMBERS = Table(
    "blocked_numbers", BlockedNumber, "phone", ("tenant_id", "phone", "created_at")
)
TENANT_CONFIGS = Table("tenant_configs", TenantConfig, "tenant_id", ("tenant_id",))
SESSIONS = Table(
    "sessions",
    Session,
    "session_id",
    (
        "session_id",
        "tenant_id",
        "api_key_id",
        "status",
        "started_at",
        "expires_at",
        "alive_until",
        "duration",
        "idempotency_key",
        "notify_pending",
        "updated_at",
        "provider",
        "provider_session_id",
    ),
)
ENDPOINTS = Table("webhook_endpoints", WebhookEndpoint, "tenant_id", ("tenant_id",))
DELIVERIES = Table(
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
        "next_attempt_at",
    ),
)


def insert_row(conn: sqlite3.Connection, table: Table, document: Mapping[str, Any]) -> None:
    """Insert a row; AlreadyExists when a unique column is taken."""
    row = table.row(document)
    names = ", ".join(row)
    marks = ", ".join(f":{n}" for n in row)
    try:
        conn.execute(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", row)  # noqa: S608
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(f"{table.name}: {exc}") from exc


def replace_row(conn: sqlite3.Connection, table: Table, document: Mapping[str, Any]) -> None:
    """Overwrite the row with the document's key."""
    row = table.row(document)
    sets = ", ".join(f"{n} = :{n}" for n in row if n != table.key)
    conn.execute(f"UPDATE {table.name} SET {sets} WHERE {table.key} = :{table.key}", row)  # noqa: S608


def select_one(
    conn: sqlite3.Connection, table: Table, where: str, params: Sequence[Any]
) -> Any | None:
    """The record of the first row matching `where`, or None."""
    found = conn.execute(
        f"SELECT doc FROM {table.name} WHERE {where}",  # noqa: S608
        params,
    ).fetchone()
    return None if found is None else table.model.model_validate_json(found[0])


def select_all(
    conn: sqlite3.Connection, model: type[M], sql: str, params: Sequence[Any]
) -> list[M]:
    """The records of every row `sql` selects (its only column: `doc`)."""
    return [model.model_validate_json(doc) for (doc,) in conn.execute(sql, params)]
