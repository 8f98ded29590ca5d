"""`GET /v1/calls/{call_id}/events`: the call's timeline, for support ("why did this call
fail?"): status changes, dial attempts and webhook delivery attempts, oldest first."""

from __future__ import annotations

from fastapi import APIRouter

from switchboard_api.deps import StoreDep, TenantDep
from switchboard_api.error_codes import CALL_NOT_FOUND, TENANT_ROUTE
from switchboard_api.routes.calls import tenant_call
from switchboard_shared.calls.timeline import Timeline, timeline
from switchboard_shared.domain.webhooks import Delivery, DeliveryFilter
from switchboard_shared.http.errors import error_responses_doc

router = APIRouter(prefix="/v1/calls", tags=["calls"])

# A call has a handful of deliveries (one per event and endpoint); this bounds a pathological one.
_MAX_DELIVERY_PAGES = 5


@router.get(
    "/{call_id}/events",
    response_model=Timeline,
    response_model_exclude_none=True,
    summary="Get a call's timeline",
    responses=error_responses_doc(*TENANT_ROUTE, CALL_NOT_FOUND),
)
async def list_call_events(call_id: str, tenant: TenantDep, store: StoreDep) -> Timeline:
    """Every status change with its time (and, at the end, the reason), each dial attempt
    with its outcome, and each webhook delivery attempt with its status code and latency."""
    call = await tenant_call(store, tenant, call_id)
    deliveries: list[Delivery] = []
    cursor: str | None = None
    for _ in range(_MAX_DELIVERY_PAGES):
        page = await store.list_deliveries(
            tenant.tenant_id, DeliveryFilter(call_id=call.call_id), 100, cursor
        )
        deliveries += page.deliveries
        if (cursor := page.next_cursor) is None:
            break
    return timeline(call, deliveries)
