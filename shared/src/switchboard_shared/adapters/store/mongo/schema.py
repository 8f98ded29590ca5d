"""The MongoDB collections and their indexes.

One collection per record type; a record's id is its `_id` (agents: their key). Listing
indexes follow equality-sort-range: one per filter combination of `GET /v1/calls`
(tenant, tenant+status, tenant+agent, tenant+status+agent), each ending in
(created_at, call_id) descending, so a page is an index walk with no in-memory sort.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from switchboard_shared.adapters.store.common import deliveries as delivery_indexes
from switchboard_shared.domain.webhooks import DeliveryStatus

NEWEST_FIRST = ("created_at", DESCENDING)

INDEXES: dict[str, list[IndexModel]] = {
    "calls": [
        IndexModel(
            [("tenant_id", ASCENDING), NEWEST_FIRST, ("call_id", DESCENDING)],
            name="calls_by_tenant_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_status_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("agent", ASCENDING),
                NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_agent_created",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                ("agent", ASCENDING),
                NEWEST_FIRST,
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
            [("batch_id", ASCENDING), ("status", ASCENDING)],
            name="calls_by_batch_status",
            partialFilterExpression={"batch_id": {"$type": "string"}},
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("batch_id", ASCENDING),
                NEWEST_FIRST,
                ("call_id", DESCENDING),
            ],
            name="calls_by_tenant_batch_created",
            partialFilterExpression={"batch_id": {"$type": "string"}},
        ),
        # The dispatcher's "scheduled calls due by T".
        IndexModel(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING)],
            name="calls_by_status_next_attempt",
        ),
        IndexModel(
            [("notify_pending", ASCENDING), ("updated_at", ASCENDING)],
            name="calls_by_notify_pending",
            partialFilterExpression={"notify_pending": True},
        ),
        # Calls waiting for a slot: by lane, oldest waiting first; and every lane's oldest.
        IndexModel(
            [("waiting_lane", ASCENDING), ("waiting_since", ASCENDING)],
            name="calls_by_waiting_lane",
            partialFilterExpression={"waiting_lane": {"$type": "string"}},
        ),
        IndexModel(
            [("waiting_since", ASCENDING)],
            name="calls_by_waiting_since",
            partialFilterExpression={"waiting_since": {"$type": "date"}},
        ),
    ],
    # Counted slots: one document per slot, `_id` "<scope>#<index>" with index below the
    # limit, so two replicas taking the same free slot collide on `_id`.
    "slots": [
        IndexModel(
            [("scope", ASCENDING), ("holder", ASCENDING)],
            name="slots_by_scope_holder",
            unique=True,
        ),
        # release_slots(holder) names no scope.
        IndexModel([("holder", ASCENDING)], name="slots_by_holder"),
        IndexModel([("taken_at", ASCENDING)], name="slots_by_taken_at"),
    ],
    "batches": [
        IndexModel(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="batches_by_idempotency_key",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        ),
        IndexModel(
            [("tenant_id", ASCENDING), NEWEST_FIRST, ("batch_id", DESCENDING)],
            name="batches_by_tenant_created",
        ),
    ],
    "blocked_numbers": [
        IndexModel(
            [("tenant_id", ASCENDING), ("phone", ASCENDING)],
            name="blocked_numbers_by_tenant_phone",
            unique=True,
        ),
        IndexModel(
            [("tenant_id", ASCENDING), NEWEST_FIRST, ("phone", DESCENDING)],
            name="blocked_numbers_by_tenant_created",
        ),
    ],
    "sessions": [
        IndexModel(
            [("tenant_id", ASCENDING), ("started_at", DESCENDING), ("session_id", DESCENDING)],
            name="sessions_by_tenant_started",
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                ("started_at", DESCENDING),
                ("session_id", DESCENDING),
            ],
            name="sessions_by_tenant_status_started",
        ),
        # One active session per API key, whoever inserts it.
        IndexModel(
            [("api_key_id", ASCENDING)],
            name="sessions_active_by_key",
            unique=True,
            partialFilterExpression={"status": "active"},
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="sessions_by_idempotency_key",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        ),
        IndexModel(
            [("status", ASCENDING), ("expires_at", ASCENDING)], name="sessions_by_status_expiry"
        ),
        IndexModel(
            [("status", ASCENDING), ("alive_until", ASCENDING)], name="sessions_by_status_alive"
        ),
        IndexModel(
            [("notify_pending", ASCENDING), ("updated_at", ASCENDING)],
            name="sessions_by_notify_pending",
            partialFilterExpression={"notify_pending": True},
        ),
        # A provider's session webhook names the session by the provider's id.
        IndexModel(
            [("provider", ASCENDING), ("provider_session_id", ASCENDING)],
            name="sessions_by_provider_session",
            partialFilterExpression={"provider_session_id": {"$type": "string"}},
        ),
    ],
    # Used join tokens, dropped by MongoDB once expired (their signature refuses them).
    "used_join_tokens": [
        IndexModel([("expires_at", ASCENDING)], name="used_join_tokens_ttl", expireAfterSeconds=0)
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
            [("tenant_id", ASCENDING), NEWEST_FIRST, ("delivery_id", DESCENDING)],
            name=delivery_indexes.BY_TENANT,
        ),
        # Listings by event (the notifier, on every event), call and status.
        *(
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    (field, ASCENDING),
                    NEWEST_FIRST,
                    ("delivery_id", DESCENDING),
                ],
                name=name,
            )
            for field, name in (
                ("event_id", delivery_indexes.BY_EVENT),
                ("call_id", delivery_indexes.BY_CALL),
                ("status", delivery_indexes.BY_STATUS),
            )
        ),
        # The retry scheduler's "pending deliveries due before T, oldest due first".
        IndexModel(
            [("next_attempt_at", ASCENDING), ("_id", ASCENDING)],
            name="deliveries_by_due",
            partialFilterExpression={"status": DeliveryStatus.PENDING.value},
        ),
    ],
}


async def create_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create every index (idempotent: existing ones are kept)."""
    for name, indexes in INDEXES.items():
        await db[name].create_indexes(indexes)
