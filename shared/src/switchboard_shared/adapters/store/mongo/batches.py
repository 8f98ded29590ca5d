"""Batches in MongoDB (the `BatchStore` port). The batch document and its calls are
written in one transaction (a replica set or SecantusDB; a standalone mongod has none):
the idempotency key is taken by the batch's insert, and no batch is ever short of its
calls."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.calls import batch_holder_keeps_key
from switchboard_shared.adapters.store.common.paging import Position, read_batch_page
from switchboard_shared.adapters.store.common.records import (
    as_stored,
    batch_call_documents,
    stored_now,
    stored_value,
)
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.adapters.store.mongo.queries import batch_list_queries, read_listing
from switchboard_shared.domain.batches import (
    Batch,
    BatchCall,
    BatchFilter,
    BatchPage,
    BatchProgress,
    BatchState,
)
from switchboard_shared.domain.calls import Call, CallStatus, utcnow

_CHUNK = 1000
_OPEN = sorted(s.value for s in CallStatus if not s.is_terminal)


class MongoBatchStore(OnMongo):
    """`BatchStore` on a MongoDB database; `_id` is the batch id."""

    async def insert_batch(
        self,
        batch: Batch,
        template: Call,
        calls: list[BatchCall],
        idempotency_ttl_seconds: float,
    ) -> tuple[Batch, bool]:
        stored = as_stored(batch)
        batches = self._db.collection("batches")
        documents = [
            {"_id": document["call_id"], **document}
            for document in batch_call_documents(template, calls)
        ]

        async def write(session: AsyncClientSession) -> None:
            # One transaction: the batch and every call, or nothing (a process dying
            # midway leaves no batch short of its calls). The batch's insert takes the
            # idempotency key: a DuplicateKeyError aborts it all.
            await batches.insert_one(to_document(stored, stored.batch_id), session=session)
            for start in range(0, len(documents), _CHUNK):
                await self._db.collection("calls").insert_many(
                    documents[start : start + _CHUNK], session=session
                )

        with driver_errors():
            while True:
                try:
                    async with self._db.client.start_session() as session:
                        await session.with_transaction(write)
                    return stored, True
                except DuplicateKeyError:
                    if stored.idempotency_key is None:
                        raise
                    held = await self._key_holder(stored, idempotency_ttl_seconds)
                    if held is not None:
                        return held
                # The key was given up (or freed as expired) meanwhile: try again.

    async def _key_holder(
        self, stored: Batch, idempotency_ttl_seconds: float
    ) -> tuple[Batch, bool] | None:
        """The answer when the tenant's batch holding `stored`'s key is kept (a replay),
        else None after freeing the key (expired)."""
        batches = self._db.collection("batches")
        found = await batches.find_one(
            {"tenant_id": stored.tenant_id, "idempotency_key": stored.idempotency_key}
        )
        holder = from_document(Batch, found)
        if holder is None:
            return None
        if batch_holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
            return holder, False
        await batches.update_one({"_id": holder.batch_id}, {"$set": {"idempotency_key": None}})
        return None

    async def get_batch(self, batch_id: str, tenant_id: str | None = None) -> Batch | None:
        query: dict[str, Any] = {"_id": batch_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        with driver_errors():
            return from_document(Batch, await self._db.collection("batches").find_one(query))

    async def set_batch_state(
        self, batch_id: str, state: BatchState, *, from_states: frozenset[BatchState]
    ) -> Batch | None:
        with driver_errors():
            found = await self._db.collection("batches").find_one_and_update(
                {"_id": batch_id, "state": {"$in": sorted(s.value for s in from_states)}},
                {"$set": {"state": state.value, "updated_at": stored_now()}},
                return_document=ReturnDocument.AFTER,
            )
        return from_document(Batch, found)

    async def batch_has_open_calls(self, batch_id: str) -> bool:
        with driver_errors():
            found = await self._db.collection("calls").find_one(
                {"batch_id": batch_id, "status": {"$in": _OPEN}}, projection={"_id": 1}
            )
        return found is not None

    async def find_open_batches(self, limit: int = 100) -> list[Batch]:
        with driver_errors():
            cursor = self._db.collection("batches").find(
                {"completed_at": None}, sort=[("created_at", ASCENDING)], limit=limit
            )
            return [Batch.model_validate(strip_id(d)) async for d in cursor]

    async def mark_batch_completed(self, batch_id: str, at: datetime) -> Batch | None:
        with driver_errors():
            found = await self._db.collection("batches").find_one_and_update(
                {"_id": batch_id, "completed_at": None},
                {"$set": {"completed_at": stored_value(at)}},
                return_document=ReturnDocument.AFTER,
            )
        return from_document(Batch, found)

    async def mark_batch_started(self, batch_id: str, at: datetime) -> Batch | None:
        with driver_errors():
            found = await self._db.collection("batches").find_one_and_update(
                {"_id": batch_id, "started_at": None},
                {"$set": {"started_at": stored_value(at)}},
                return_document=ReturnDocument.AFTER,
            )
        return from_document(Batch, found)

    async def list_batches(
        self, tenant_id: str, filters: BatchFilter, limit: int, cursor: str | None
    ) -> BatchPage:
        now = utcnow()

        async def fetch(after: Position | None, count: int) -> list[Batch]:
            queries = batch_list_queries(tenant_id, filters, now, after, count)
            found = await read_listing(self._db.collection("batches"), queries)
            return [Batch.model_validate(d) for d in found]

        return await read_batch_page(limit, cursor, fetch)

    async def batch_progress(self, batch_id: str) -> BatchProgress:
        pipeline: list[Mapping[str, Any]] = [
            {"$match": {"batch_id": batch_id}},
            {
                "$group": {
                    "_id": "$status",
                    "calls": {"$sum": 1},
                    "attempts": {"$sum": {"$size": {"$ifNull": ["$attempts", []]}}},
                }
            },
        ]
        with driver_errors():
            groups = [
                group async for group in await self._db.collection("calls").aggregate(pipeline)
            ]
        return BatchProgress.of(
            {g["_id"]: g["calls"] for g in groups}, sum(int(g["attempts"]) for g in groups)
        )
