"""Each tenant's defaults in MongoDB (the `ConfigStore` port)."""

from __future__ import annotations

from pymongo import ReturnDocument

from switchboard_shared.adapters.store.common.records import stored_document, stored_now
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import driver_errors, from_document
from switchboard_shared.domain.tenant_config import SessionDefaults, TenantConfig


class MongoConfigStore(OnMongo):
    """`ConfigStore` on a MongoDB database (collection `tenant_configs`, by tenant id)."""

    async def get_config(self, tenant_id: str) -> TenantConfig | None:
        with driver_errors():
            found = await self._db.collection("tenant_configs").find_one({"_id": tenant_id})
        return from_document(TenantConfig, found)

    async def update_config(
        self, tenant_id: str, changes: SessionDefaults, fields: set[str]
    ) -> TenantConfig:
        # One upsert: the given fields are set, the others keep their stored value or,
        # on the first write, the defaults; so concurrent updates of different fields hold.
        given = {name: value for name, value in stored_document(changes).items() if name in fields}
        defaults = stored_document(TenantConfig.defaults_for(tenant_id))
        on_insert = {k: v for k, v in defaults.items() if k not in given and k != "updated_at"}
        with driver_errors():
            found = await self._db.collection("tenant_configs").find_one_and_update(
                {"_id": tenant_id},
                {"$set": {**given, "updated_at": stored_now()}, "$setOnInsert": on_insert},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        config = from_document(TenantConfig, found)
        assert config is not None  # an upsert returning the document after always finds it
        return config
