"""Tenants and their API keys in SQLite (the `TenantStore` port)."""

from __future__ import annotations

import sqlite3

from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_document,
    stored_now,
)
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    API_KEYS,
    TENANTS,
    insert_row,
    replace_row,
    select_all,
    select_one,
)
from switchboard_shared.domain.tenants import ApiKey, Tenant


class SqliteTenantStore(OnSqlite):
    """`TenantStore` on a SQLite database."""

    async def create_tenant(self, tenant: Tenant) -> Tenant:
        stored = as_stored(tenant)

        def op(conn: sqlite3.Connection) -> Tenant:
            insert_row(conn, TENANTS, stored_document(stored))
            return stored

        return await self._db.run(op)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._db.read(lambda c: select_one(c, TENANTS, "tenant_id = ?", (tenant_id,)))

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        return await self._db.read(lambda c: select_one(c, TENANTS, "name = ?", (name,)))

    async def add_api_key(self, key: ApiKey) -> ApiKey:
        stored = as_stored(key)

        def op(conn: sqlite3.Connection) -> ApiKey:
            insert_row(conn, API_KEYS, stored_document(stored))
            return stored

        return await self._db.run(op)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return await self._db.read(lambda c: select_one(c, API_KEYS, "key_hash = ?", (key_hash,)))

    async def revoke_api_key(self, key_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                key = select_one(conn, API_KEYS, "key_id = ?", (key_id,))
                if key is None or key.revoked_at is not None:
                    return False
                revoked = stored_document(key) | {"revoked_at": stored_now()}
                replace_row(conn, API_KEYS, revoked)
                return True

        return await self._db.run(op)

    async def set_tenant_limits(
        self, tenant_id: str, *, max_concurrent_calls: int
    ) -> Tenant | None:
        def op(conn: sqlite3.Connection) -> Tenant | None:
            with immediate(conn):
                tenant: Tenant | None = select_one(conn, TENANTS, "tenant_id = ?", (tenant_id,))
                if tenant is None:
                    return None
                updated = as_stored(
                    tenant.model_copy(update={"max_concurrent_calls": max_concurrent_calls})
                )
                replace_row(conn, TENANTS, stored_document(updated))
                return updated

        return await self._db.run(op)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        sql = "SELECT doc FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id"
        return await self._db.run(lambda c: select_all(c, ApiKey, sql, (tenant_id,)))
