"""The finds the listings and the delivery scheduler issue, built as plain values so a
test can ask the server which index serves each.

The query after a cursor is split in two index-friendly queries, rather than one `$or`:
the records created in the cursor's own millisecond with a smaller id, then the older
ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from switchboard_shared.adapters.store.common.deliveries import delivery_listing_index
from switchboard_shared.adapters.store.common.paging import Position
from switchboard_shared.adapters.store.common.records import stored_value
from switchboard_shared.adapters.store.mongo.documents import Document, driver_errors, strip_id
from switchboard_shared.adapters.store.mongo.schema import NEWEST_FIRST
from switchboard_shared.domain.batches import BatchFilter, BatchState, BatchStatus
from switchboard_shared.domain.calls import CallFilter
from switchboard_shared.domain.webhooks import DeliveryFilter, DeliveryStatus


@dataclass(frozen=True)
class ListingQuery:
    """One `find` a listing issues: filter, sort and how many documents at most."""

    filter: Document
    sort: list[tuple[str, int]]
    limit: int
    # The index to use, where a planner might scan the collection for a filter on
    # fields outside the index (the batch status filter).
    hint: str | None = None


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
    sort = [NEWEST_FIRST, (id_field, DESCENDING)]
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
    if filters.batch_id is not None:
        equal["batch_id"] = filters.batch_id
    return listing_queries(
        equal,
        "call_id",
        created_after=filters.created_after,
        created_before=filters.created_before,
        after=after,
        limit=limit,
    )


def batch_status_filter(status: BatchStatus, now: datetime) -> Document:
    """The batches whose `recorded_status` at `now` is `status`."""
    if status is BatchStatus.COMPLETED:
        return {"completed_at": {"$ne": None}}
    if status in (BatchStatus.CANCELED, BatchStatus.PAUSED):
        state = BatchState.CANCELED if status is BatchStatus.CANCELED else BatchState.PAUSED
        return {"completed_at": None, "state": state.value}
    active: Document = {"completed_at": None, "state": BatchState.ACTIVE.value}
    moment = stored_value(now)
    if status is BatchStatus.SCHEDULED:
        return {**active, "started_at": None, "first_due": {"$gt": moment}}
    started: list[Document] = [
        {"started_at": {"$ne": None}},
        {"first_due": None},
        {"first_due": {"$lte": moment}},
    ]
    return {**active, "$or": started}


def batch_list_queries(
    tenant_id: str, filters: BatchFilter, now: datetime, after: Position | None, limit: int
) -> list[ListingQuery]:
    """The finds `MongoStore.list_batches` issues for one page (served by
    `batches_by_tenant_created`)."""
    equal: Document = {"tenant_id": tenant_id}
    if filters.status is not None:
        equal.update(batch_status_filter(filters.status, now))
    if filters.agent is not None:
        equal["agent"] = filters.agent
    queries = listing_queries(
        equal,
        "batch_id",
        created_after=filters.created_after,
        created_before=filters.created_before,
        after=after,
        limit=limit,
    )
    return [replace(query, hint="batches_by_tenant_created") for query in queries]


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
    queries = listing_queries(
        equal, "delivery_id", created_after=None, created_before=None, after=after, limit=limit
    )
    return [replace(query, hint=delivery_listing_index(filters)) for query in queries]


def due_delivery_query(now: datetime, limit: int) -> ListingQuery:
    """The find `MongoStore.claim_due_deliveries` issues: pending deliveries due by
    `now`, oldest due first (served by `deliveries_by_due`)."""
    return ListingQuery(
        {"status": DeliveryStatus.PENDING.value, "next_attempt_at": {"$lte": stored_value(now)}},
        [("next_attempt_at", ASCENDING), ("_id", ASCENDING)],
        limit,
    )


async def read_listing(
    collection: AsyncCollection[Document], queries: list[ListingQuery]
) -> list[Document]:
    """The documents `queries` read in turn, until their shared limit is reached."""
    documents: list[Document] = []
    with driver_errors():
        for query in queries:
            wanted = query.limit - len(documents)
            if wanted <= 0:
                break
            cursor = collection.find(query.filter, sort=query.sort, limit=wanted, hint=query.hint)
            documents += [strip_id(d) async for d in cursor]
    return documents
