"""Calls, their outbox flags and the usage roll-up in MongoDB (the `CallStore` port).

Every conditional change is a single `find_one_and_update` whose filter carries the
guard, so it is atomic on the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.calls import (
    call_write,
    guard_statuses,
    holder_keeps_key,
    stored_guard,
    usage_from_groups,
)
from switchboard_shared.adapters.store.common.paging import Position, check_limit, read_call_page
from switchboard_shared.adapters.store.common.records import as_stored, stored_value
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    Document,
    all_of,
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.adapters.store.mongo.queries import (
    ListingQuery,
    call_list_queries,
    read_listing,
)
from switchboard_shared.adapters.store.mongo.schema import NEWEST_FIRST
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallFilter, CallPage, CallStatus, Usage, utcnow
from switchboard_shared.ports import AlreadyExists

# A concurrent request can take an idempotency key between our read and our insert;
# each retry decides against the new holder.
_INSERT_ATTEMPTS = 3


def call_sweep_order(*, due: bool) -> list[tuple[str, int]]:
    """The order of `find_calls`: soonest due first for the dispatcher (the index on
    (status, next_attempt_at) serves it), else oldest update first."""
    first = "next_attempt_at" if due else "updated_at"
    return [(first, ASCENDING), ("call_id", ASCENDING)]


def waiting_calls_query(
    waiting_lane: str | None, waiting_before: datetime | None
) -> ListingQuery | None:
    """The part of `find_calls`' query that finds calls waiting for a slot: filter,
    oldest waiting first, and the partial index that serves it (a lane:
    `calls_by_waiting_lane`; else `calls_by_waiting_since`). None: neither criterion.
    The `$type` clauses restate the indexes' partial filters, so a planner may use them.
    """
    if waiting_lane is None and waiting_before is None:
        return None
    sort = [("waiting_since", ASCENDING), ("call_id", ASCENDING)]
    since: Document = {}
    if waiting_before is not None:
        since = {"waiting_since": {"$type": "date", "$lt": stored_value(waiting_before)}}
    if waiting_lane is not None:
        lane = {"waiting_lane": {"$type": "string", "$eq": waiting_lane}}
        return ListingQuery(lane | since, sort, 0, hint="calls_by_waiting_lane")
    return ListingQuery(since, sort, 0, hint="calls_by_waiting_since")


class MongoCallStore(OnMongo):
    """`CallStore` on a MongoDB database."""

    async def insert_call(self, call: Call, idempotency_ttl_seconds: float) -> tuple[Call, bool]:
        stored = as_stored(call)
        calls = self._db.collection("calls")
        key = stored.idempotency_key
        with driver_errors():
            for _ in range(_INSERT_ATTEMPTS):
                if key is not None:
                    holder = from_document(
                        Call,
                        await calls.find_one(
                            {"tenant_id": stored.tenant_id, "idempotency_key": key}
                        ),
                    )
                    if holder is not None:
                        if holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
                            return holder, False
                        await calls.update_one(
                            {"_id": holder.call_id, "idempotency_key": key},
                            {"$set": {"idempotency_key": None}},
                        )
                try:
                    await calls.insert_one(to_document(stored, stored.call_id))
                except DuplicateKeyError:
                    if key is None:
                        raise
                    continue  # someone took the key (or the id) meanwhile: decide again
                return stored, True
        raise AlreadyExists(f"call {stored.call_id} or its idempotency key is taken")

    async def get_call(self, call_id: str, tenant_id: str | None = None) -> Call | None:
        query: Document = {"_id": call_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        with driver_errors():
            found = await self._db.collection("calls").find_one(query)
        return from_document(Call, found)

    async def find_call_by_provider_id(self, provider: str, provider_call_id: str) -> Call | None:
        with driver_errors():
            found = await self._db.collection("calls").find_one(
                {"provider": provider, "provider_call_id": provider_call_id},
                sort=[NEWEST_FIRST],
            )
        return from_document(Call, found)

    async def list_calls(
        self, tenant_id: str, filters: CallFilter, limit: int, cursor: str | None
    ) -> CallPage:
        async def fetch(after: Position | None, count: int) -> list[Call]:
            queries = call_list_queries(tenant_id, filters, after, count)
            found = await read_listing(self._db.collection("calls"), queries)
            return [Call.model_validate(d) for d in found]

        return await read_call_page(limit, cursor, fetch)

    async def update_call(
        self,
        call_id: str,
        changes: CallChanges,
        *,
        guard: CallGuard | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """As `CallStore.update_call`; the guard is the filter of one atomic update."""
        write = call_write(changes, bump_sequence=bump_sequence)
        clauses: list[Document] = [{"_id": call_id}]
        statuses = guard_statuses(guard)
        if statuses is not None:
            clauses.append({"status": {"$in": statuses}})
        clauses += [{name: value} for name, value in stored_guard(guard).items()]
        update: Document = {"$set": write.fields}
        if write.bump_sequence:
            update["$inc"] = {"sequence": 1}
        with driver_errors():
            found = await self._db.collection("calls").find_one_and_update(
                all_of(clauses), update, return_document=ReturnDocument.AFTER
            )
        return from_document(Call, found)

    async def mark_published(self, published: Sequence[tuple[str, int]]) -> None:
        writes = [
            UpdateOne(
                {"_id": call_id, "sequence": sequence, "publish_pending": True},
                {"$set": {"publish_pending": False}},
            )
            for call_id, sequence in published
        ]
        if writes:
            with driver_errors():
                await self._db.collection("calls").bulk_write(writes, ordered=False)

    async def find_calls(
        self,
        *,
        statuses: frozenset[CallStatus] | None = None,
        updated_before: datetime | None = None,
        publish_pending: bool | None = None,
        deadline_before: datetime | None = None,
        notify_pending: bool | None = None,
        due_before: datetime | None = None,
        batch_id: str | None = None,
        held: bool | None = None,
        waiting_lane: str | None = None,
        waiting_before: datetime | None = None,
        waiting: bool | None = None,
        limit: int = 100,
    ) -> list[Call]:
        check_limit(limit)
        query: Document = {}
        if statuses is not None:
            values = sorted(s.value for s in statuses)
            # One status as an equality: planners serve it with the (status, …) indexes
            # where a one-value `$in` may not be (SecantusDB scans the collection).
            query["status"] = values[0] if len(values) == 1 else {"$in": values}
        if updated_before is not None:
            query["updated_at"] = {"$lt": stored_value(updated_before)}
        if publish_pending is not None:
            query["publish_pending"] = publish_pending
        if deadline_before is not None:
            query["watchdog_deadline"] = {"$lt": stored_value(deadline_before)}
        if notify_pending is not None:
            # Older documents lack the field: `False` also matches a missing one.
            query["notify_pending"] = True if notify_pending else {"$ne": True}
        if due_before is not None:
            query["next_attempt_at"] = {"$lte": stored_value(due_before)}
        if batch_id is not None:
            query["batch_id"] = batch_id
        if held is not None:
            query["held_next_attempt_at"] = {"$ne": None} if held else None
        if waiting is not None:
            query["waiting_lane"] = {"$type": "string"} if waiting else None
        waiting_query = waiting_calls_query(waiting_lane, waiting_before)
        sort = call_sweep_order(due=due_before is not None)
        hint: str | None = None
        if waiting_query is not None:
            query.update(waiting_query.filter)
            sort, hint = waiting_query.sort, waiting_query.hint
        with driver_errors():
            cursor = self._db.collection("calls").find(query, sort=sort, limit=limit, hint=hint)
            return [Call.model_validate(strip_id(d)) async for d in cursor]

    async def next_waiting_lane(self, after: str | None = None) -> str | None:
        lanes: Document = {"$type": "string"}
        if after is not None:
            lanes["$gt"] = after
        with driver_errors():
            found = await self._db.collection("calls").find_one(
                {"waiting_lane": lanes},
                projection={"waiting_lane": 1},
                sort=[("waiting_lane", ASCENDING)],
                hint="calls_by_waiting_lane",
            )
        return str(found["waiting_lane"]) if found is not None else None

    async def usage(self, tenant_id: str) -> Usage:
        pipeline: list[Mapping[str, Any]] = [
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": "$status", "calls": {"$sum": 1}, "seconds": {"$sum": "$duration"}}},
        ]
        with driver_errors():
            groups = [
                (group["_id"], group["calls"], group["seconds"])
                async for group in await self._db.collection("calls").aggregate(pipeline)
            ]
        return usage_from_groups(groups)
