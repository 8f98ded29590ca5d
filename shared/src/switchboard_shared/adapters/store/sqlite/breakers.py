"""The providers' circuit breakers in SQLite (the `BreakerStore` port)."""

from __future__ import annotations

import sqlite3

from switchboard_shared.adapters.store.common.records import as_stored, stored_document
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite
from switchboard_shared.adapters.store.sqlite.rows import BREAKERS, select_all, select_one
from switchboard_shared.domain.breakers import ProviderBreaker

_CREATE = (
    "INSERT OR IGNORE INTO provider_breakers (provider, version, doc) "
    "VALUES (:provider, :version, :doc)"
)
_REPLACE = (
    "UPDATE provider_breakers SET version = :version, doc = :doc "
    "WHERE provider = :provider AND version = :expected"
)


class SqliteBreakerStore(OnSqlite):
    """`BreakerStore` on a SQLite database."""

    async def get_breaker(self, provider: str) -> ProviderBreaker | None:
        return await self._db.read(lambda c: select_one(c, BREAKERS, "provider = ?", (provider,)))

    async def list_breakers(self) -> list[ProviderBreaker]:
        sql = "SELECT doc FROM provider_breakers ORDER BY provider"
        return await self._db.run(lambda c: select_all(c, ProviderBreaker, sql, ()))

    async def save_breaker(self, breaker: ProviderBreaker) -> ProviderBreaker | None:
        saved = as_stored(breaker.model_copy(update={"version": breaker.version + 1}))
        row = BREAKERS.row(stored_document(saved))

        def write(conn: sqlite3.Connection) -> bool:
            if breaker.version == 0:
                return conn.execute(_CREATE, row).rowcount == 1
            return conn.execute(_REPLACE, {**row, "expected": breaker.version}).rowcount == 1

        return saved if await self._db.run(write) else None
