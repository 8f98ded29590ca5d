"""Each tenant's webhook endpoint and the deliveries to it, in SQLite (the `WebhookStore`
port)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from switchboard_shared.adapters.store.common.deliveries import delivery_listing_index
from switchboard_shared.adapters.store.common.paging import (
    Position,
    check_limit,
    read_delivery_page,
    to_millis,
)
from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_document,
    stored_due,
    stored_now,
    stored_value,
)
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    DELIVERIES,
    ENDPOINTS,
    insert_row,
    replace_row,
    select_all,
    select_one,
)
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import StoreError

_INSERT_ENDPOINT = "INSERT INTO webhook_endpoints (tenant_id, doc) VALUES (:tenant_id, :doc) "
_PUT_ENDPOINT = _INSERT_ENDPOINT + "ON CONFLICT (tenant_id) DO UPDATE SET doc = excluded.doc"
_CREATE_ENDPOINT = _INSERT_ENDPOINT + "ON CONFLICT (tenant_id) DO NOTHING"
_DUE = (
    "SELECT next_attempt_at, doc FROM deliveries "
    "WHERE status = ? AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at, delivery_id LIMIT ?"
)
# Compare and set on the due time read: another notifier that claimed it first moved it.
_CLAIM = (
    "UPDATE deliveries SET next_attempt_at = :next_attempt_at, doc = :doc "
    "WHERE delivery_id = :delivery_id AND status = :status "
    "AND next_attempt_at = :previous"
)


class SqliteWebhookStore(OnSqlite):
    """`WebhookStore` on a SQLite database."""

    # --- endpoints -------------------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        row = ENDPOINTS.row(stored_document(endpoint))
        await self._db.run(lambda c: c.execute(_PUT_ENDPOINT, row))

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        row = ENDPOINTS.row(stored_document(endpoint))

        def create(conn: sqlite3.Connection) -> tuple[WebhookEndpoint, bool]:
            with immediate(conn):
                created = conn.execute(_CREATE_ENDPOINT, row).rowcount == 1
                stored = select_one(conn, ENDPOINTS, "tenant_id = ?", (endpoint.tenant_id,))
            if not isinstance(stored, WebhookEndpoint):  # the row exists: inserted or kept
                raise StoreError(f"webhook endpoint of {endpoint.tenant_id} vanished")
            return stored, created

        return await self._db.run(create)

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None:
        return await self._db.read(
            lambda c: select_one(c, ENDPOINTS, "tenant_id = ?", (tenant_id,))
        )

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool:
        sql = "DELETE FROM webhook_endpoints WHERE tenant_id = ?"
        return await self._db.run(lambda c: c.execute(sql, (tenant_id,)).rowcount == 1)

    # --- deliveries ------------------------------------------------------------------------
    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        stored = as_stored(delivery)

        def op(conn: sqlite3.Connection) -> tuple[Delivery, bool]:
            with immediate(conn):
                existing = select_one(
                    conn, DELIVERIES, "event_id = ? AND url = ?", (stored.event_id, stored.url)
                )
                if existing is not None:
                    return existing, False
                insert_row(conn, DELIVERIES, stored_document(stored))
                return stored, True

        return await self._db.run(op)

    async def get_delivery(self, delivery_id: str, tenant_id: str | None = None) -> Delivery | None:
        where = "delivery_id = ?"
        params: tuple[str, ...] = (delivery_id,)
        if tenant_id is not None:
            where, params = "delivery_id = ? AND tenant_id = ?", (delivery_id, tenant_id)
        return await self._db.read(lambda c: select_one(c, DELIVERIES, where, params))

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None = None,
    ) -> Delivery | None:
        due = stored_due(status, next_attempt_at)

        def op(conn: sqlite3.Connection) -> Delivery | None:
            with immediate(conn):
                delivery = select_one(conn, DELIVERIES, "delivery_id = ?", (delivery_id,))
                if delivery is None:
                    return None
                document = stored_document(delivery)
                document["attempts"].append(stored_document(attempt))
                document["status"] = status.value
                document["next_attempt_at"] = due
                document["schedule_attempts"] += 1
                document["updated_at"] = stored_now()
                updated = Delivery.model_validate(document)
                replace_row(conn, DELIVERIES, stored_document(updated))
                return updated

        return await self._db.run(op)

    async def claim_due_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        check_limit(limit)
        lease = stored_value(lease_until)

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            claimed: list[Delivery] = []
            with immediate(conn):
                due = conn.execute(
                    _DUE, (DeliveryStatus.PENDING.value, to_millis(now), limit)
                ).fetchall()
                for previous, doc in due:
                    document = stored_document(Delivery.model_validate_json(doc))
                    document["next_attempt_at"] = lease
                    row = DELIVERIES.row(document) | {"previous": previous}
                    if conn.execute(_CLAIM, row).rowcount == 1:
                        claimed.append(Delivery.model_validate(document))
            return claimed

        return await self._db.run(op)

    async def restart_delivery(
        self, delivery_id: str, next_attempt_at: datetime, replayed_at: datetime | None
    ) -> Delivery | None:
        def op(conn: sqlite3.Connection) -> Delivery | None:
            with immediate(conn):
                delivery = select_one(conn, DELIVERIES, "delivery_id = ?", (delivery_id,))
                if delivery is None:
                    return None
                document = stored_document(delivery) | {
                    "status": DeliveryStatus.PENDING.value,
                    "next_attempt_at": stored_value(next_attempt_at),
                    "schedule_attempts": 0,
                    "replayed_at": stored_value(replayed_at),
                    "updated_at": stored_now(),
                }
                updated = Delivery.model_validate(document)
                replace_row(conn, DELIVERIES, stored_document(updated))
                return updated

        return await self._db.run(op)

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        where: list[str] = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        for column, value in (
            ("call_id", filters.call_id),
            ("event_id", filters.event_id),
            ("status", filters.status.value if filters.status is not None else None),
            ("event_type", filters.event_type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)

        index = delivery_listing_index(filters)

        async def fetch(after: Position | None, count: int) -> list[Delivery]:
            clauses, values = list(where), list(params)
            if after is not None:
                clauses.append("(created_at, delivery_id) < (?, ?)")
                values += [to_millis(after.created_at), after.id]
            sql = (
                f"SELECT doc FROM deliveries INDEXED BY {index} "  # noqa: S608
                f"WHERE {' AND '.join(clauses)} "
                "ORDER BY created_at DESC, delivery_id DESC LIMIT ?"
            )
            return await self._db.run(lambda c: select_all(c, Delivery, sql, [*values, count]))

        return await read_delivery_page(limit, cursor, fetch)
