"""Each tenant's defaults in SQLite (the `ConfigStore` port)."""

from __future__ import annotations

import sqlite3

from switchboard_shared.adapters.store.common.records import as_stored, stored_document
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    TENANT_CONFIGS,
    insert_row,
    replace_row,
    select_one,
)
from switchboard_shared.domain.tenant_config import SessionDefaults, TenantConfig


class SqliteConfigStore(OnSqlite):
    """`ConfigStore` on a SQLite database."""

    async def get_config(self, tenant_id: str) -> TenantConfig | None:
        return await self._db.run(
            lambda c: select_one(c, TENANT_CONFIGS, "tenant_id = ?", (tenant_id,))
        )

    async def update_config(
        self, tenant_id: str, changes: SessionDefaults, fields: set[str]
    ) -> TenantConfig:
        def op(conn: sqlite3.Connection) -> TenantConfig:
            # The write lock is held from the read on, so no concurrent update is lost.
            with immediate(conn):
                current = select_one(conn, TENANT_CONFIGS, "tenant_id = ?", (tenant_id,))
                base = current or TenantConfig.defaults_for(tenant_id)
                updated = as_stored(base.with_changes(changes, fields))
                write = insert_row if current is None else replace_row
                write(conn, TENANT_CONFIGS, stored_document(updated))
                return updated

        return await self._db.run(op)
