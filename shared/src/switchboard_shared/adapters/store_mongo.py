"""The Store on MongoDB, through PyMongo's native async API (`AsyncMongoClient`).

One collection per record type; a record's id is its `_id` (agents: their key). Every
conditional change is a single `find_one_and_update` whose filter carries the guard, so
it is atomic on the server. Datetimes are read back tz-aware in UTC; they are stored to
the millisecond (BSON dates), like the SQLite store.

Listing indexes follow equality-sort-range: one per filter combination of `GET /v1/calls`
(tenant, tenant+status, tenant+agent, tenant+status+agent), each ending in
(created_at, call_id) descending, so a page is an index walk with no in-memory sort. The
query after a cursor is split in two index-friendly queries, rather than one `$or`: the
calls created in the cursor's own millisecond with a smaller id, then the older ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson.codec_options import CodecOptions
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from switchboard_shared.adapters.paging import (
    Position,
    check_limit,
    decode_cursor,
    split_page,
)
from switchboard_shared.adapters.store_records import (
    as_stored,
    holder_keeps_key,
    stored_changes,
    stored_document,
    stored_expectations,
    stored_now,
    stored_value,
)
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import (
    TERMINAL_STATUSES,
    Call,
    CallFilter,
    CallPage,
    CallStatus,
    Usage,
    utcnow,
)
from switchboard_shared.domain.tenants import ApiKey, Tenant
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import AlreadyExists, StoreError

M = TypeVar("M", bound=BaseModel)
Document = dict[str, Any]

# A concurrent request can take an idempotency key between our read and our insert;
# each retry decides against the new holder.
_INSERT_ATTEMPTS = 3
_NEWEST_FIRST = ("created_at", DESCENDING)

_INDEXES: dict[str, list[IndexModel]] = {
    "calls": [
        IndexModel(
            [("tenant_id", ASCENDING), _NEWEST_FIRST, ("call_id", DESCENDING)],
            name="calls_by_tenant_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                _NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_status_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("agent", ASCENDING),
                _NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_agent_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                ("agent", ASCENDING),
                _NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_status_agent_created",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="calls_by_idempotency_key",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        ),
        IndexModel(
            [("provider", ASCENDING), ("provider_call_id", ASCENDING)],
            name="calls_by_provider_call",
        ),
        IndexModel(
            [("publish_pending", ASCENDING), ("updated_at", ASCENDING)], name="calls_by_pending"
        ),
        IndexModel(
            [("status", ASCENDING), ("updated_at", ASCENDING)], name="calls_by_status_updated"
        ),
        IndexModel(
            [("status", ASCENDING), ("watchdog_deadline", ASCENDING)],
            name="calls_by_status_deadline",
        ),
        IndexModel(
            [("notify_pending", ASCENDING), ("updated_at", ASCENDING)],
            name="calls_by_notify_pending",
            partialFilterExpression={"notify_pending": True},
        ),
    ],
    "api_keys": [
        IndexModel([("key_hash", ASCENDING)], name="api_keys_by_hash", unique=True),
        IndexModel(
            [("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="api_keys_by_tenant"
        ),
    ],
    "tenants": [IndexModel([("name", ASCENDING)], name="tenants_by_name", unique=True)],
    "agents": [IndexModel([("key", ASCENDING)], name="agents_by_key", unique=True)],
    "deliveries": [
        IndexModel(
            [("event_id", ASCENDING), ("url", ASCENDING)],
            name="deliveries_by_event_url",
            unique=True,
        ),
        IndexModel(
            [("tenant_id", ASCENDING), _NEWEST_FIRST, ("delivery_id", DESCENDING)],
            name="deliveries_by_tenant_created",
        ),
    ],
}


# --- listing queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingQuery:
    """One `find` a listing issues: filter, sort and how many documents at most."""

    filter: Document
    sort: list[tuple[str, int]]
    limit: int


def listing_queries(
    equal: Mapping[str, Any],
    id_field: str,
    *,
    created_after: datetime | None,
    created_before: datetime | None,
    after: Position | None,
    limit: int,
) -> list[ListingQuery]:
    """The finds that read, newest first by (created_at, `id_field`), up to `limit`
    documents matching `equal` strictly between the creation bounds and strictly after
    the cursor position `after`. Run them in order until `limit` documents are read."""
    sort = [_NEWEST_FIRST, (id_field, DESCENDING)]
    lower = stored_value(created_after) if created_after is not None else None
    upper = stored_value(created_before) if created_before is not None else None
    queries = []
    if after is not None:
        tied = stored_value(after.created_at)
        if (lower is None or tied > lower) and (upper is None or tied < upper):
            queries.append(
                ListingQuery(
                    {**equal, "created_at": tied, id_field: {"$lt": after.id}}, sort, limit
                )
            )
        upper = tied if upper is None else min(upper, tied)
    created: Document = {}
    if lower is not None:
        created["$gt"] = lower
    if upper is not None:
        created["$lt"] = upper
    queries.append(
        ListingQuery({**equal, **({"created_at": created} if created else {})}, sort, limit)
    )
    return queries


def call_list_queries(
    tenant_id: str, filters: CallFilter, after: Position | None, limit: int
) -> list[ListingQuery]:
    """The finds `MongoStore.list_calls` issues for one page (`limit` includes the extra
    document that tells whether another page follows)."""
    equal: Document = {"tenant_id": tenant_id}
    if filters.status is not None:
        equal["status"] = filters.status.value
    if filters.agent is not None:
        equal["agent"] = filters.agent
    return listing_queries(
        equal,
        "call_id",
        created_after=filters.created_after,
        created_before=filters.created_before,
        after=after,
        limit=limit,
    )


def delivery_list_queries(
    tenant_id: str, filters: DeliveryFilter, after: Position | None, limit: int
) -> list[ListingQuery]:
    """The finds `MongoStore.list_deliveries` issues for one page."""
    equal: Document = {"tenant_id": tenant_id}
    if filters.call_id is not None:
        equal["call_id"] = filters.call_id
    if filters.event_id is not None:
        equal["event_id"] = filters.event_id
    if filters.status is not None:
        equal["status"] = filters.status.value
    if filters.event_type is not None:
        equal["event_type"] = filters.event_type
    return listing_queries(
        equal, "delivery_id", created_after=None, created_before=None, after=after, limit=limit
    )


# --- documents -------------------------------------------------------------------------------


def _to_document(model: BaseModel, id_value: str) -> Document:
    return {"_id": id_value, **stored_document(model)}


def _from_document(model: type[M], document: Document | None) -> M | None:
    if document is None:
        return None
    document.pop("_id", None)
    return model.model_validate(document)


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    """Driver failures become the port's errors: a unique value taken is AlreadyExists,
    anything else StoreError."""
    try:
        yield
    except DuplicateKeyError as exc:
        raise AlreadyExists(str(exc)) from exc
    except PyMongoError as exc:
        raise StoreError(f"MongoDB: {exc}") from exc


class MongoStore:
    """Store adapter for database `database` on the MongoDB at `url`."""

    def __init__(self, url: str, database: str, *, timeout_ms: int = 5_000) -> None:
        self._url = url
        self._database_name = database
        self._timeout_ms = timeout_ms
        self._client: AsyncMongoClient[Document] | None = None
        self._db: AsyncDatabase[Document] | None = None

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and create every index (idempotent: existing ones are kept)."""
        if self._client is not None:
            return
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            self._url,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._timeout_ms,
            connectTimeoutMS=self._timeout_ms,
        )
        db = client.get_database(
            self._database_name, codec_options=CodecOptions(tz_aware=True, tzinfo=UTC)
        )
        try:
            with _driver_errors():
                for name, indexes in _INDEXES.items():
                    await db[name].create_indexes(indexes)
        except BaseException:
            await client.close()
            raise
        self._client, self._db = client, db

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        with _driver_errors():
            await self._database.command("ping")

    @property
    def _database(self) -> AsyncDatabase[Document]:
        if self._db is None:
            raise StoreError("the MongoDB store is not started")
        return self._db

    def _collection(self, name: str) -> AsyncCollection[Document]:
        return self._database[name]

    # --- tenants & keys ------------------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> Tenant:
        stored = as_stored(tenant)
        with _driver_errors():
            await self._collection("tenants").insert_one(_to_document(stored, stored.tenant_id))
        return stored

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        with _driver_errors():
            found = await self._collection("tenants").find_one({"_id": tenant_id})
        return _from_document(Tenant, found)

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        with _driver_errors():
            found = await self._collection("tenants").find_one({"name": name})
        return _from_document(Tenant, found)

    async def add_api_key(self, key: ApiKey) -> ApiKey:
        stored = as_stored(key)
        with _driver_errors():
            await self._collection("api_keys").insert_one(_to_document(stored, stored.key_id))
        return stored

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        with _driver_errors():
            found = await self._collection("api_keys").find_one({"key_hash": key_hash})
        return _from_document(ApiKey, found)

    async def revoke_api_key(self, key_id: str) -> bool:
        with _driver_errors():
            result = await self._collection("api_keys").update_one(
                {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": stored_now()}}
            )
        return result.modified_count == 1

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        with _driver_errors():
            cursor = self._collection("api_keys").find(
                {"tenant_id": tenant_id}, sort=[("created_at", ASCENDING), ("_id", ASCENDING)]
            )
            return [ApiKey.model_validate(_strip_id(d)) async for d in cursor]

    # --- agents ----------------------------------------------------------------------------
    async def upsert_agent(self, agent: Agent) -> None:
        with _driver_errors():
            await self._collection("agents").replace_one(
                {"_id": agent.key}, _to_document(agent, agent.key), upsert=True
            )

    async def get_agent(self, key: str) -> Agent | None:
        with _driver_errors():
            found = await self._collection("agents").find_one({"_id": key})
        return _from_document(Agent, found)

    async def list_agents(self) -> list[Agent]:
        with _driver_errors():
            cursor = self._collection("agents").find({}, sort=[("key", ASCENDING)])
            return [Agent.model_validate(_strip_id(d)) async for d in cursor]

    # --- calls -------------------------------------------------------------------------------
    async def insert_call(self, call: Call, idempotency_ttl_seconds: float) -> tuple[Call, bool]:
        stored = as_stored(call)
        calls = self._collection("calls")
        key = stored.idempotency_key
        with _driver_errors():
            for _ in range(_INSERT_ATTEMPTS):
                if key is not None:
                    holder = _from_document(
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
                    await calls.insert_one(_to_document(stored, stored.call_id))
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
        with _driver_errors():
            found = await self._collection("calls").find_one(query)
        return _from_document(Call, found)

    async def find_call_by_provider_id(self, provider: str, provider_call_id: str) -> Call | None:
        with _driver_errors():
            found = await self._collection("calls").find_one(
                {"provider": provider, "provider_call_id": provider_call_id},
                sort=[_NEWEST_FIRST],
            )
        return _from_document(Call, found)

    async def list_calls(
        self, tenant_id: str, filters: CallFilter, limit: int, cursor: str | None
    ) -> CallPage:
        check_limit(limit)
        after = decode_cursor("calls", cursor) if cursor is not None else None
        queries = call_list_queries(tenant_id, filters, after, limit + 1)
        found = [Call.model_validate(d) for d in await self._run_listing("calls", queries)]
        page, next_cursor = split_page(
            "calls", found, limit, lambda call: Position(call.created_at, call.call_id)
        )
        return CallPage(calls=page, next_cursor=next_cursor)

    async def _run_listing(self, collection: str, queries: list[ListingQuery]) -> list[Document]:
        documents: list[Document] = []
        with _driver_errors():
            for query in queries:
                wanted = query.limit - len(documents)
                if wanted <= 0:
                    break
                cursor = self._collection(collection).find(
                    query.filter, sort=query.sort, limit=wanted
                )
                documents += [_strip_id(d) async for d in cursor]
        return documents

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        expected_statuses: frozenset[CallStatus] | None = None,
        expected: Mapping[str, Any] | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """As `Store.update_call`; an `updated_at` in `changes` is kept (else: now)."""
        fields = stored_changes(changes)
        if bump_sequence and "sequence" in fields:
            raise ValueError("bump_sequence and an explicit sequence exclude each other")
        clauses: list[Document] = [{"_id": call_id}]
        if expected_statuses is not None:
            clauses.append({"status": {"$in": sorted(s.value for s in expected_statuses)}})
        clauses += [{name: value} for name, value in stored_expectations(expected).items()]
        update: Document = {
            "$set": {**fields, "updated_at": fields.get("updated_at", stored_now())}
        }
        if bump_sequence:
            update["$set"]["publish_pending"] = True
            update["$inc"] = {"sequence": 1}
        with _driver_errors():
            found = await self._collection("calls").find_one_and_update(
                _all_of(clauses), update, return_document=ReturnDocument.AFTER
            )
        return _from_document(Call, found)

    async def mark_published(self, call_id: str, sequence: int) -> None:
        with _driver_errors():
            await self._collection("calls").update_one(
                {"_id": call_id, "sequence": sequence, "publish_pending": True},
                {"$set": {"publish_pending": False}},
            )

    async def find_calls(
        self,
        *,
        statuses: frozenset[CallStatus] | None = None,
        updated_before: datetime | None = None,
        publish_pending: bool | None = None,
        deadline_before: datetime | None = None,
        notify_pending: bool | None = None,
        limit: int = 100,
    ) -> list[Call]:
        check_limit(limit)
        query: Document = {}
        if statuses is not None:
            query["status"] = {"$in": sorted(s.value for s in statuses)}
        if updated_before is not None:
            query["updated_at"] = {"$lt": stored_value(updated_before)}
        if publish_pending is not None:
            query["publish_pending"] = publish_pending
        if deadline_before is not None:
            query["watchdog_deadline"] = {"$lt": stored_value(deadline_before)}
        if notify_pending is not None:
            # Older documents lack the field: `False` also matches a missing one.
            query["notify_pending"] = True if notify_pending else {"$ne": True}
        with _driver_errors():
            cursor = self._collection("calls").find(
                query, sort=[("updated_at", ASCENDING), ("call_id", ASCENDING)], limit=limit
            )
            return [Call.model_validate(_strip_id(d)) async for d in cursor]

    async def usage(self, tenant_id: str) -> Usage:
        """Totals of the tenant's calls; `by_status` has every status, zeros included."""
        pipeline = [
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": "$status", "calls": {"$sum": 1}, "seconds": {"$sum": "$duration"}}},
        ]
        by_status = {s.value: 0 for s in CallStatus}
        seconds = 0
        with _driver_errors():
            async for group in await self._collection("calls").aggregate(pipeline):
                by_status[group["_id"]] = group["calls"]
                seconds += int(group["seconds"])
        terminal = {s.value for s in TERMINAL_STATUSES}
        return Usage(
            total_calls=sum(by_status.values()),
            total_seconds=seconds,
            active_calls=sum(n for s, n in by_status.items() if s not in terminal),
            by_status=by_status,
        )

    # --- webhook endpoints -------------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        with _driver_errors():
            await self._collection("webhook_endpoints").replace_one(
                {"_id": endpoint.tenant_id},
                _to_document(endpoint, endpoint.tenant_id),
                upsert=True,
            )

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        with _driver_errors():
            result = await self._collection("webhook_endpoints").update_one(
                {"_id": endpoint.tenant_id},
                {"$setOnInsert": _to_document(endpoint, endpoint.tenant_id)},
                upsert=True,
            )
            found = await self._collection("webhook_endpoints").find_one(
                {"_id": endpoint.tenant_id}
            )
        stored = _from_document(WebhookEndpoint, found)
        if stored is None:
            raise StoreError("webhook endpoint vanished right after its upsert")
        return stored, result.upserted_id is not None

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None:
        with _driver_errors():
            found = await self._collection("webhook_endpoints").find_one({"_id": tenant_id})
        return _from_document(WebhookEndpoint, found)

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool:
        with _driver_errors():
            result = await self._collection("webhook_endpoints").delete_one({"_id": tenant_id})
        return result.deleted_count == 1

    # --- deliveries --------------------------------------------------------------------------
    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        stored = as_stored(delivery)
        deliveries = self._collection("deliveries")
        with _driver_errors():
            try:
                await deliveries.insert_one(_to_document(stored, stored.delivery_id))
            except DuplicateKeyError:
                existing = _from_document(
                    Delivery,
                    await deliveries.find_one({"event_id": stored.event_id, "url": stored.url}),
                )
                if existing is None:
                    raise  # the delivery id, not (event_id, url), is taken
                return existing, False
        return stored, True

    async def get_delivery(self, delivery_id: str, tenant_id: str | None = None) -> Delivery | None:
        query: Document = {"_id": delivery_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        with _driver_errors():
            found = await self._collection("deliveries").find_one(query)
        return _from_document(Delivery, found)

    async def record_attempt(
        self, delivery_id: str, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> Delivery | None:
        update = {
            "$push": {"attempts": stored_document(attempt)},
            "$set": {"status": status.value, "updated_at": stored_now()},
        }
        with _driver_errors():
            found = await self._collection("deliveries").find_one_and_update(
                {"_id": delivery_id}, update, return_document=ReturnDocument.AFTER
            )
        return _from_document(Delivery, found)

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        check_limit(limit)
        after = decode_cursor("deliveries", cursor) if cursor is not None else None
        queries = delivery_list_queries(tenant_id, filters, after, limit + 1)
        found = [Delivery.model_validate(d) for d in await self._run_listing("deliveries", queries)]
        page, next_cursor = split_page(
            "deliveries", found, limit, lambda d: Position(d.created_at, d.delivery_id)
        )
        return DeliveryPage(deliveries=page, next_cursor=next_cursor)


def _strip_id(document: Document) -> Document:
    document.pop("_id", None)
    return document


def _all_of(clauses: list[Document]) -> Document:
    """One filter document for all `clauses`; `$and` only when two name the same field
    (a flat filter lets any planner use an index)."""
    merged: Document = {}
    for clause in clauses:
        if merged.keys() & clause.keys():
            return {"$and": clauses}
        merged.update(clause)
    return merged
