"""Each tenant's blocked numbers in MongoDB (the `BlockedNumberStore` port): one
document per (tenant, number), `_id` both joined."""

from __future__ import annotations

from collections.abc import Collection

from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.paging import Position, read_blocked_number_page
from switchboard_shared.adapters.store.common.records import as_stored
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    driver_errors,
    from_document,
    to_document,
)
from switchboard_shared.adapters.store.mongo.queries import listing_queries, read_listing
from switchboard_shared.domain.blocked_numbers import BlockedNumber, BlockedNumberPage

_CHUNK = 1000


def _key(tenant_id: str, phone: str) -> str:
    return f"{tenant_id}/{phone}"


class MongoBlockedNumberStore(OnMongo):
    """`BlockedNumberStore` on a MongoDB database."""

    async def block_number(self, entry: BlockedNumber) -> tuple[BlockedNumber, bool]:
        stored = as_stored(entry)
        numbers = self._db.collection("blocked_numbers")
        key = _key(stored.tenant_id, stored.phone)
        with driver_errors():
            try:
                await numbers.insert_one(to_document(stored, key))
            except DuplicateKeyError:
                held = from_document(BlockedNumber, await numbers.find_one({"_id": key}))
                if held is None:
                    raise  # unblocked meanwhile: the caller may retry
                return held, False
        return stored, True

    async def unblock_number(self, tenant_id: str, phone: str) -> bool:
        with driver_errors():
            result = await self._db.collection("blocked_numbers").delete_one(
                {"_id": _key(tenant_id, phone)}
            )
        return result.deleted_count == 1

    async def blocked_among(self, tenant_id: str, phones: Collection[str]) -> set[str]:
        wanted = sorted(set(phones))
        found: set[str] = set()
        numbers = self._db.collection("blocked_numbers")
        with driver_errors():
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                cursor = numbers.find(
                    {"tenant_id": tenant_id, "phone": {"$in": chunk}}, projection={"phone": 1}
                )
                found.update([d["phone"] async for d in cursor])
        return found

    async def list_blocked_numbers(
        self, tenant_id: str, limit: int, cursor: str | None
    ) -> BlockedNumberPage:
        async def fetch(after: Position | None, count: int) -> list[BlockedNumber]:
            queries = listing_queries(
                {"tenant_id": tenant_id},
                "phone",
                created_after=None,
                created_before=None,
                after=after,
                limit=count,
            )
            found = await read_listing(self._db.collection("blocked_numbers"), queries)
            return [BlockedNumber.model_validate(d) for d in found]

        return await read_blocked_number_page(limit, cursor, fetch)
