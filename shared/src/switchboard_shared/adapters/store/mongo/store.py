"""The Store on MongoDB: the aggregates' stores (tenants, agents, calls, webhooks,
provider breakers, tenant configs, sessions, blocked numbers, batches, slots) over one shared
`MongoDatabase`. Datetimes are stored to the millisecond (BSON dates), like the SQLite
store."""

from __future__ import annotations

from switchboard_shared.adapters.store.mongo.agents import MongoAgentStore
from switchboard_shared.adapters.store.mongo.batches import MongoBatchStore
from switchboard_shared.adapters.store.mongo.blocked_numbers import MongoBlockedNumberStore
from switchboard_shared.adapters.store.mongo.breakers import MongoBreakerStore
from switchboard_shared.adapters.store.mongo.calls import MongoCallStore
from switchboard_shared.adapters.store.mongo.connection import MongoDatabase
from switchboard_shared.adapters.store.mongo.sessions import MongoSessionStore
from switchboard_shared.adapters.store.mongo.slots import MongoSlotStore
from switchboard_shared.adapters.store.mongo.tenant_config import MongoConfigStore
from switchboard_shared.adapters.store.mongo.tenants import MongoTenantStore
from switchboard_shared.adapters.store.mongo.webhooks import MongoWebhookStore


class MongoStore(
    MongoTenantStore,
    MongoAgentStore,
    MongoCallStore,
    MongoWebhookStore,
    MongoBreakerStore,
    MongoConfigStore,
    MongoSessionStore,
    MongoBlockedNumberStore,
    MongoBatchStore,
    MongoSlotStore,
):
    """Store adapter for database `database` on the MongoDB at `url`."""

    def __init__(self, url: str, database: str, *, timeout_ms: int = 5_000) -> None:
        super().__init__(MongoDatabase(url, database, timeout_ms=timeout_ms))

    async def start(self) -> None:
        """Connect and create every index (idempotent: existing ones are kept)."""
        await self._db.start()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.ping()
