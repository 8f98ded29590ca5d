"""`/v1/usage`: call and session totals of the key's tenant."""

from __future__ import annotations

from fastapi import APIRouter

from switchboard_api.deps import StoreDep, TenantDep
from switchboard_api.error_codes import (
    TENANT_ROUTE,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_api.schemas import Concurrency, SessionSeconds, UsageView
from switchboard_shared.calls.concurrency import TENANT, lane
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.sessions import Elapsed
from switchboard_shared.http.errors import error_responses_doc

router = APIRouter(prefix="/v1/usage", tags=["usage"], route_class=JsonApiRoute)


@router.get(
    "",
    response_model=UsageView,
    summary="Get usage",
    responses=error_responses_doc(*TENANT_ROUTE),
)
async def get_usage(tenant: TenantDep, store: StoreDep) -> UsageView:
    """Totals over all of the tenant's calls (`by_status` lists every status, zeros
    too) and sessions, and the tenant's concurrent calls against its limit."""
    usage = await store.usage(tenant.tenant_id)
    sessions = await store.session_usage(tenant.tenant_id)
    seconds = Elapsed.of(sessions.session_seconds)
    active = await store.count_slots(lane(TENANT, tenant.tenant_id))
    return UsageView(
        total_calls=usage.total_calls,
        total_seconds=usage.total_seconds,
        active_calls=usage.active_calls,
        by_status={s.value: usage.by_status.get(s.value, 0) for s in CallStatus},
        total_sessions=sessions.total_sessions,
        session_seconds=SessionSeconds(seconds=seconds.total_seconds, display=seconds.display),
        active_sessions=sessions.active_sessions,
        concurrency=Concurrency(
            limit=tenant.max_concurrent_calls,
            active=active,
            queued=usage.by_status.get(CallStatus.QUEUED.value, 0),
        ),
    )
