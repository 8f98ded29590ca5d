"""Each tenant's defaults in MongoDB (the `ConfigStore` port)."""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from switchboard_shared.adapters.store.common.records import stored_document, stored_now
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import driver_errors, from_document
from switchboard_shared.domain.tenant_config import SessionDefaults, TenantConfig
from switchboard_shared.ports import StoreError

_RACED_UPSERT_ATTEMPTS = 3


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
        update = {"$set": {**given, "updated_at": stored_now()}, "$setOnInsert": on_insert}
        # Two first writes racing: one inserts, the other may fail on the taken `_id` (or,
        # on some servers, find nothing); the document exists by then, so once more is an
        # update that holds.
        for _ in range(_RACED_UPSERT_ATTEMPTS):
            try:
                found = await self._db.collection("tenant_configs").find_one_and_update(
                    {"_id": tenant_id}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                continue
            except PyMongoError as exc:
                raise StoreError(f"MongoDB: {exc}") from exc
            config = from_document(TenantConfig, found)
            if config is not None:
                return config
        raise StoreError(f"the config of tenant {tenant_id!r} could not be written")
