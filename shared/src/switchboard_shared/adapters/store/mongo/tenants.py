"""Tenants and their API keys in MongoDB (the `TenantStore` port)."""

from __future__ import annotations

from pymongo import ASCENDING, ReturnDocument

from switchboard_shared.adapters.store.common.records import as_stored, stored_now
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.domain.tenants import ApiKey, Tenant


class MongoTenantStore(OnMongo):
    """`TenantStore` on a MongoDB database."""

    async def create_tenant(self, tenant: Tenant) -> Tenant:
        stored = as_stored(tenant)
        with driver_errors():
            await self._db.collection("tenants").insert_one(to_document(stored, stored.tenant_id))
        return stored

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        with driver_errors():
            found = await self._db.collection("tenants").find_one({"_id": tenant_id})
        return from_document(Tenant, found)

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        with driver_errors():
            found = await self._db.collection("tenants").find_one({"name": name})
        return from_document(Tenant, found)

    async def add_api_key(self, key: ApiKey) -> ApiKey:
        stored = as_stored(key)
        with driver_errors():
            await self._db.collection("api_keys").insert_one(to_document(stored, stored.key_id))
        return stored

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        with driver_errors():
            found = await self._db.collection("api_keys").find_one({"key_hash": key_hash})
        return from_document(ApiKey, found)

    async def revoke_api_key(self, key_id: str) -> bool:
        with driver_errors():
            result = await self._db.collection("api_keys").update_one(
                {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": stored_now()}}
            )
        return result.modified_count == 1

    async def set_tenant_limits(
        self, tenant_id: str, *, max_concurrent_calls: int
    ) -> Tenant | None:
        with driver_errors():
            found = await self._db.collection("tenants").find_one_and_update(
                {"_id": tenant_id},
                {"$set": {"max_concurrent_calls": max_concurrent_calls}},
                return_document=ReturnDocument.AFTER,
            )
        return from_document(Tenant, found)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        with driver_errors():
            cursor = self._db.collection("api_keys").find(
                {"tenant_id": tenant_id}, sort=[("created_at", ASCENDING), ("_id", ASCENDING)]
            )
            return [ApiKey.model_validate(strip_id(d)) async for d in cursor]
