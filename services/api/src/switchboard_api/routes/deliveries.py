"""`/v1/webhook-deliveries`: the webhook delivery log and manual replay."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from switchboard_api.deps import BusDep, PageCursor, PageLimit, StoreDep, TenantDep
from switchboard_api.error_codes import (
    BROKER_UNAVAILABLE,
    DELIVERY_NOT_FOUND,
    INVALID_CURSOR,
    TENANT_ROUTE,
    VALIDATION_ERROR,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.webhooks import Delivery, DeliveryFilter, DeliveryStatus
from switchboard_shared.http.errors import ApiError, clip, error_responses_doc
from switchboard_shared.ports import PublishError, Store

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhooks"], route_class=JsonApiRoute)


class DeliveryAttemptView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-01-15T09:30:46Z",
                    "status_code": 503,
                    "latency_ms": 84,
                    "error": "HTTP 503",
                    "response_body": "Service Unavailable",
                }
            ]
        }
    )

    at: datetime = Field(description="When the attempt started.")
    status_code: int | None = Field(description="The receiver's HTTP status; null if none.")
    latency_ms: int | None
    error: str | None = Field(description="Why it did not count as delivered.")
    response_body: str | None = Field(description="The first KiB of the receiver's answer.")


class DeliverySummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delivery_id": "dlv_5e6f7a8b9c0d",
                    "event_id": "evt_0a1b2c3d4e5f",
                    "event_type": "call.completed",
                    "call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                    "url": "https://example.com/switchboard",
                    "status": "pending",
                    "attempt_count": 1,
                    "last_status_code": 503,
                    "created_at": "2026-01-15T09:30:46Z",
                    "updated_at": "2026-01-15T09:30:47Z",
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delivery_id": "dlv_5e6f7a8b9c0d",
                    "event_id": "evt_0a1b2c3d4e5f",
                    "event_type": "call.completed",
                    "call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                    "url": "https://example.com/switchboard",
                    "status": "pending",
                    "attempt_count": 1,
                    "last_status_code": 503,
                    "created_at": "2026-01-15T09:30:46Z",
                    "updated_at": "2026-01-15T09:30:47Z",
                    "payload": {
                        "type": "call.completed",
                        "id": "evt_0a1b2c3d4e5f",
                        "created_at": "2026-01-15T09:30:46Z",
                        "data": {
                            "call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                            "status": "completed",
                            "agent": "altynai",
                            "phone": "+996700000000",
                            "transcript": "agent: Hello\nuser: Hi",
                            "duration": 42,
                            "created_at": "2026-01-15T09:30:00Z",
                            "started_at": "2026-01-15T09:30:04Z",
                            "ended_at": "2026-01-15T09:30:46Z",
                            "ended_reason": "completed",
                            "variables": {"name": "Aida"},
                            "metadata": {"order_id": "A-1001"},
                        },
                    },
                    "attempts": [
                        {
                            "at": "2026-01-15T09:30:46Z",
                            "status_code": 503,
                            "latency_ms": 84,
                            "error": "HTTP 503",
                            "response_body": "Service Unavailable",
                        }
                    ],
                }
            ]
        }
    )

    payload: dict[str, Any] = Field(description="The exact JSON body sent on every attempt.")
    attempts: list[DeliveryAttemptView] = Field(description="Oldest first.")


class DeliveryList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "delivery_id": "dlv_5e6f7a8b9c0d",
                            "event_id": "evt_0a1b2c3d4e5f",
                            "event_type": "call.completed",
                            "call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                            "url": "https://example.com/switchboard",
                            "status": "pending",
                            "attempt_count": 1,
                            "last_status_code": 503,
                            "created_at": "2026-01-15T09:30:46Z",
                            "updated_at": "2026-01-15T09:30:47Z",
                        }
                    ],
                    "next_cursor": "eyJjcmVhdGVkX2F0IjoiMjAyNi0wMS0xNVQwOTozMDowMFoifQ",
                }
            ]
        }
    )

    data: list[DeliverySummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ReplayAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"delivery_id": "dlv_5e6f7a8b9c0d", "event_id": "evt_9f8e7d6c5b4a"}]
        }
    )

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
        raise ApiError(404, "delivery_not_found", f"no webhook delivery '{clip(delivery_id)}'")
    return delivery


@router.get(
    "",
    response_model=DeliveryList,
    summary="List webhook deliveries",
    responses=error_responses_doc(*TENANT_ROUTE, INVALID_CURSOR, VALIDATION_ERROR),
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
    responses=error_responses_doc(*TENANT_ROUTE, DELIVERY_NOT_FOUND),
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
    responses=error_responses_doc(*TENANT_ROUTE, DELIVERY_NOT_FOUND, BROKER_UNAVAILABLE),
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
