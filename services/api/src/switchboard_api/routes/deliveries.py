"""`/v1/webhook-deliveries`: the webhook delivery log and manual replay."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from switchboard_api.deps import BusDep, PageCursor, PageLimit, StoreDep, TenantDep
from switchboard_shared.domain.webhooks import Delivery, DeliveryFilter, DeliveryStatus
from switchboard_shared.events import Event, EventType
from switchboard_shared.http_errors import ApiError, error_responses_doc
from switchboard_shared.ports import PublishError, Store

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhooks"])


class DeliveryAttemptView(BaseModel):
    at: datetime = Field(description="When the attempt started.")
    status_code: int | None = Field(description="The receiver's HTTP status; null if none.")
    latency_ms: int | None
    error: str | None = Field(description="Why it did not count as delivered.")
    response_body: str | None = Field(description="The first KiB of the receiver's answer.")


class DeliverySummary(BaseModel):
    delivery_id: str
    event_id: str = Field(description="The webhook's `id` and `webhook-id` header.")
    event_type: str
    call_id: str | None
    url: str
    status: DeliveryStatus = Field(
        description="`pending` while attempts go on, then `delivered` or `failed`."
    )
    attempt_count: int
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime


class DeliveryDetail(DeliverySummary):
    payload: dict[str, Any] = Field(description="The exact JSON body sent on every attempt.")
    attempts: list[DeliveryAttemptView] = Field(description="Oldest first.")


class DeliveryList(BaseModel):
    data: list[DeliverySummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ReplayAccepted(BaseModel):
    delivery_id: str
    event_id: str = Field(description="Id of the replay request (not of the webhook).")


def _summary_fields(delivery: Delivery) -> dict[str, Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return {
        "delivery_id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "call_id": delivery.call_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempt_count": len(delivery.attempts),
        "last_status_code": last.status_code if last else None,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
    }


async def _tenant_delivery(store: Store, tenant_id: str, delivery_id: str) -> Delivery:
    delivery = await store.get_delivery(delivery_id, tenant_id)
    if delivery is None:
        raise ApiError(404, "delivery_not_found", f"no webhook delivery '{delivery_id}'")
    return delivery


@router.get(
    "",
    response_model=DeliveryList,
    summary="List webhook deliveries",
    responses=error_responses_doc(400, 401, 422, 500),
)
async def list_deliveries(
    tenant: TenantDep,
    store: StoreDep,
    limit: PageLimit = 20,
    cursor: PageCursor = None,
    call_id: Annotated[str | None, Query(description="Only this call's deliveries.")] = None,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status.")] = None,
    event_type: Annotated[str | None, Query(description="Only this event type.")] = None,
) -> DeliveryList:
    """The tenant's deliveries, newest first, with cursor pagination."""
    filters = DeliveryFilter(call_id=call_id, status=status, event_type=event_type)
    # An unreadable cursor is a 400 `invalid_cursor` (the app's InvalidCursor handler).
    page = await store.list_deliveries(tenant.tenant_id, filters, limit, cursor)
    return DeliveryList(
        data=[DeliverySummary(**_summary_fields(d)) for d in page.deliveries],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{delivery_id}",
    response_model=DeliveryDetail,
    summary="Get a webhook delivery",
    responses=error_responses_doc(401, 404, 500),
)
async def get_delivery(delivery_id: str, tenant: TenantDep, store: StoreDep) -> DeliveryDetail:
    """One delivery with its payload and every attempt (time, status, latency, error)."""
    delivery = await _tenant_delivery(store, tenant.tenant_id, delivery_id)
    return DeliveryDetail(
        **_summary_fields(delivery),
        payload=json.loads(delivery.payload),
        attempts=[DeliveryAttemptView(**a.model_dump()) for a in delivery.attempts],
    )


@router.post(
    "/{delivery_id}/retry",
    status_code=202,
    response_model=ReplayAccepted,
    summary="Send a delivery again",
    responses=error_responses_doc(401, 404, 500, 503),
)
async def retry_delivery(
    delivery_id: str, tenant: TenantDep, store: StoreDep, bus: BusDep
) -> ReplayAccepted:
    """Queue the delivery for another attempt with the same body and `webhook-id`,
    whatever its status; if that attempt fails it goes through the retry schedule again."""
    delivery = await _tenant_delivery(store, tenant.tenant_id, delivery_id)
    event = Event(
        type=EventType.WEBHOOK_REPLAY_REQUESTED,
        tenant_id=tenant.tenant_id,
        call_id=delivery.call_id,
        data={"delivery_id": delivery.delivery_id},
    )
    try:
        await bus.publish(event)
    except PublishError as exc:
        raise ApiError(503, "broker_unavailable", "the replay could not be queued; retry") from exc
    return ReplayAccepted(delivery_id=delivery.delivery_id, event_id=event.id)
