"""The embedded Store: one SQLite file, safe for several processes on one host.

`SqliteStore` is the aggregates' stores (tenants, agents, calls, webhooks, breakers,
tenant configs, sessions, blocked numbers, batches, slots) over one shared
`SqliteDatabase`: one file, one connection, one worker thread.
"""

from __future__ import annotations

from pathlib import Path

from switchboard_shared.adapters.store.sqlite.agents import SqliteAgentStore
from switchboard_shared.adapters.store.sqlite.batches import SqliteBatchStore
from switchboard_shared.adapters.store.sqlite.blocked_numbers import SqliteBlockedNumberStore
from switchboard_shared.adapters.store.sqlite.breakers import SqliteBreakerStore
from switchboard_shared.adapters.store.sqlite.calls import SqliteCallStore
from switchboard_shared.adapters.store.sqlite.connection import SqliteDatabase
from switchboard_shared.adapters.store.sqlite.sessions import SqliteSessionStore
from switchboard_shared.adapters.store.sqlite.slots import SqliteSlotStore
from switchboard_shared.adapters.store.sqlite.tenant_config import SqliteConfigStore
from switchboard_shared.adapters.store.sqlite.tenants import SqliteTenantStore
from switchboard_shared.adapters.store.sqlite.webhooks import SqliteWebhookStore


class SqliteStore(
    SqliteTenantStore,
    SqliteAgentStore,
    SqliteCallStore,
    SqliteWebhookStore,
    SqliteBreakerStore,
    SqliteConfigStore,
    SqliteSessionStore,
    SqliteBlockedNumberStore,
    SqliteBatchStore,
    SqliteSlotStore,
):
    """Store adapter for a SQLite file at `path` (parent directories are created)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        super().__init__(SqliteDatabase(path, busy_timeout_ms=busy_timeout_ms))

    async def start(self) -> None:
        """Open the file (creating it and its directory), switch to WAL, create tables."""
        await self._db.start()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.run(lambda conn: conn.execute("SELECT 1").fetchone())
