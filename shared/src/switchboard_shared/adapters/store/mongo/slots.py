"""Counted slots in MongoDB (the `SlotStore` port).

A scope's slots are documents `{_id: "<scope>#<index>", scope, index, holder, taken_at}`
with `index` below the limit: a taker inserts the smallest index it read as free, so two
replicas taking the same slot collide on `_id` and one of them reads again. A unique
index on (scope, holder) keeps a holder to one slot of a scope.

Every query names its index (`hint`): SecantusDB, the test server, plans by hint.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.paging import check_limit
from switchboard_shared.adapters.store.common.records import stored_now, stored_value
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import Document, driver_errors
from switchboard_shared.domain.slots import Slot

BY_SCOPE_HOLDER = "slots_by_scope_holder"
BY_HOLDER = "slots_by_holder"
BY_TAKEN_AT = "slots_by_taken_at"
BY_ID = "_id_"

# Each lost round is a slot another taker got, so `limit` rounds either take one or find
# the scope full; the few more cover slots given back meanwhile.
_EXTRA_ROUNDS = 3


def slot_id(scope: str, index: int) -> str:
    """The `_id` of `scope`'s slot number `index`."""
    return f"{scope}#{index}"


def scope_query(scope: str) -> Document:
    """The filter of a scope's slots (served by `slots_by_scope_holder`)."""
    return {"scope": scope}


def taken_before_query(taken_before: datetime) -> Document:
    """The filter of the lease sweep (served by `slots_by_taken_at`)."""
    return {"taken_at": {"$lt": stored_value(taken_before)}}


class MongoSlotStore(OnMongo):
    """`SlotStore` on a MongoDB database."""

    async def take_slot(self, scope: str, holder: str, limit: int) -> bool:
        """As `SlotStore.take_slot`. Inserting the smallest index read as free, after a
        read that saw fewer than `limit` holders, never exceeds `limit` even with holders
        left above a lowered limit: the index space bounds the new ones, the read bounds
        the old ones."""
        slots = self._db.collection("slots")
        with driver_errors():
            for _ in range(limit + _EXTRA_ROUNDS):
                cursor = slots.find(
                    scope_query(scope), projection={"index": 1, "holder": 1}, hint=BY_SCOPE_HOLDER
                )
                taken = [d async for d in cursor]
                if any(d["holder"] == holder for d in taken):
                    return True
                if len(taken) >= limit:
                    return False
                used = {d["index"] for d in taken}
                index = next(i for i in range(limit) if i not in used)
                document = {
                    "_id": slot_id(scope, index),
                    "scope": scope,
                    "index": index,
                    "holder": holder,
                    "taken_at": stored_now(),
                }
                try:
                    await slots.insert_one(document)
                except DuplicateKeyError:
                    # Another replica took that index, or this holder took a slot of the
                    # scope meanwhile: the next read tells which.
                    continue
                return True
        return False

    async def release_slots(self, holder: str) -> list[str]:
        slots = self._db.collection("slots")
        released: list[str] = []
        with driver_errors():
            cursor = slots.find({"holder": holder}, projection={"scope": 1}, hint=BY_HOLDER)
            for found in [d async for d in cursor]:
                # By `_id` and holder: only what this call gave back is reported.
                result = await slots.delete_one({"_id": found["_id"], "holder": holder}, hint=BY_ID)
                if result.deleted_count == 1:
                    released.append(found["scope"])
        return sorted(released)

    async def release_slot(self, scope: str, holder: str) -> bool:
        with driver_errors():
            result = await self._db.collection("slots").delete_one(
                {"scope": scope, "holder": holder}, hint=BY_SCOPE_HOLDER
            )
        return result.deleted_count == 1

    async def count_slots(self, scope: str) -> int:
        with driver_errors():
            return await self._db.collection("slots").count_documents(
                scope_query(scope), hint=BY_SCOPE_HOLDER
            )

    async def find_slots(self, *, taken_before: datetime, limit: int = 100) -> list[Slot]:
        check_limit(limit)
        with driver_errors():
            cursor = self._db.collection("slots").find(
                taken_before_query(taken_before),
                projection={"_id": 0, "scope": 1, "holder": 1, "taken_at": 1},
                sort=[("taken_at", ASCENDING)],
                limit=limit,
                hint=BY_TAKEN_AT,
            )
            return [Slot.model_validate(d) async for d in cursor]

    async def renew_slot(self, scope: str, holder: str, at: datetime) -> bool:
        with driver_errors():
            result = await self._db.collection("slots").update_one(
                {"scope": scope, "holder": holder},
                {"$set": {"taken_at": stored_value(at)}},
                hint=BY_SCOPE_HOLDER,
            )
        return result.matched_count == 1
