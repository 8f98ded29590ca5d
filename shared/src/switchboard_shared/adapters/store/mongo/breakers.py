"""The providers' circuit breakers in MongoDB (the `BreakerStore` port)."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.records import as_stored
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.domain.breakers import ProviderBreaker


class MongoBreakerStore(OnMongo):
    """`BreakerStore` on a MongoDB database: one document per provider, `_id` its name."""

    async def get_breaker(self, provider: str) -> ProviderBreaker | None:
        with driver_errors():
            found = await self._db.collection("provider_breakers").find_one({"_id": provider})
        return from_document(ProviderBreaker, found)

    async def list_breakers(self) -> list[ProviderBreaker]:
        with driver_errors():
            cursor = self._db.collection("provider_breakers").find({}, sort=[("_id", ASCENDING)])
            return [ProviderBreaker.model_validate(strip_id(d)) async for d in cursor]

    async def save_breaker(self, breaker: ProviderBreaker) -> ProviderBreaker | None:
        saved = as_stored(breaker.model_copy(update={"version": breaker.version + 1}))
        document = to_document(saved, saved.provider)
        breakers = self._db.collection("provider_breakers")
        with driver_errors():
            if breaker.version == 0:
                try:
                    await breakers.insert_one(document)
                except DuplicateKeyError:
                    return None  # another replica stored one first
                return saved
            result = await breakers.replace_one(
                {"_id": saved.provider, "version": breaker.version}, document
            )
        return saved if result.matched_count == 1 else None
