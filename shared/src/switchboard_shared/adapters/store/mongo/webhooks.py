"""Each tenant's webhook endpoint and the deliveries to it, in MongoDB (the
`WebhookStore` port)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.paging import (
    Position,
    check_limit,
    read_delivery_page,
)
from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_document,
    stored_due,
    stored_now,
    stored_value,
)
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    Document,
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.adapters.store.mongo.queries import (
    delivery_list_queries,
    due_delivery_query,
    read_listing,
)
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import StoreError


class MongoWebhookStore(OnMongo):
    """`WebhookStore` on a MongoDB database."""

    # --- endpoints -------------------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        with driver_errors():
            await self._db.collection("webhook_endpoints").replace_one(
                {"_id": endpoint.tenant_id},
                to_document(endpoint, endpoint.tenant_id),
                upsert=True,
            )

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        endpoints = self._db.collection("webhook_endpoints")
        with driver_errors():
            result = await endpoints.update_one(
                {"_id": endpoint.tenant_id},
                {"$setOnInsert": to_document(endpoint, endpoint.tenant_id)},
                upsert=True,
            )
            found = await endpoints.find_one({"_id": endpoint.tenant_id})
        stored = from_document(WebhookEndpoint, found)
        if stored is None:
            raise StoreError("webhook endpoint vanished right after its upsert")
        return stored, result.upserted_id is not None

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None:
        with driver_errors():
            found = await self._db.collection("webhook_endpoints").find_one({"_id": tenant_id})
        return from_document(WebhookEndpoint, found)

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool:
        with driver_errors():
            result = await self._db.collection("webhook_endpoints").delete_one({"_id": tenant_id})
        return result.deleted_count == 1

    # --- deliveries ------------------------------------------------------------------------
    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        stored = as_stored(delivery)
        deliveries = self._db.collection("deliveries")
        with driver_errors():
            try:
                await deliveries.insert_one(to_document(stored, stored.delivery_id))
            except DuplicateKeyError:
                existing = from_document(
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
        with driver_errors():
            found = await self._db.collection("deliveries").find_one(query)
        return from_document(Delivery, found)

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None = None,
    ) -> Delivery | None:
        update = {
            "$push": {"attempts": stored_document(attempt)},
            "$set": {
                "status": status.value,
                "next_attempt_at": stored_due(status, next_attempt_at),
                "updated_at": stored_now(),
            },
            "$inc": {"schedule_attempts": 1},
        }
        with driver_errors():
            found = await self._db.collection("deliveries").find_one_and_update(
                {"_id": delivery_id}, update, return_document=ReturnDocument.AFTER
            )
        return from_document(Delivery, found)

    async def claim_due_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        check_limit(limit)
        deliveries = self._db.collection("deliveries")
        pending = DeliveryStatus.PENDING.value
        lease = stored_value(lease_until)
        claimed: list[Delivery] = []
        query = due_delivery_query(now, limit)
        with driver_errors():
            cursor = deliveries.find(
                query.filter,
                projection={"next_attempt_at": True},
                sort=query.sort,
                limit=query.limit,
            )
            due = [(d["_id"], d["next_attempt_at"]) async for d in cursor]
            for delivery_id, previous in due:
                # Compare and set: another notifier that claimed it first moved the time.
                found = await deliveries.find_one_and_update(
                    {"_id": delivery_id, "status": pending, "next_attempt_at": previous},
                    {"$set": {"next_attempt_at": lease}},
                    return_document=ReturnDocument.AFTER,
                )
                if found is not None:
                    claimed.append(Delivery.model_validate(strip_id(found)))
        return claimed

    async def restart_delivery(
        self, delivery_id: str, next_attempt_at: datetime, replayed_at: datetime | None
    ) -> Delivery | None:
        update = {
            "$set": {
                "status": DeliveryStatus.PENDING.value,
                "next_attempt_at": stored_value(next_attempt_at),
                "schedule_attempts": 0,
                "replayed_at": stored_value(replayed_at),
                "updated_at": stored_now(),
            }
        }
        with driver_errors():
            found = await self._db.collection("deliveries").find_one_and_update(
                {"_id": delivery_id}, update, return_document=ReturnDocument.AFTER
            )
        return from_document(Delivery, found)

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        async def fetch(after: Position | None, count: int) -> list[Delivery]:
            queries = delivery_list_queries(tenant_id, filters, after, count)
            found = await read_listing(self._db.collection("deliveries"), queries)
            return [Delivery.model_validate(d) for d in found]

        return await read_delivery_page(limit, cursor, fetch)
