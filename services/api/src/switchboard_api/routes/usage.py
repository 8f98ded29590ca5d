"""`/v1/usage`: call totals of the key's tenant."""

from __future__ import annotations

from fastapi import APIRouter

from switchboard_api.deps import StoreDep, TenantDep
from switchboard_api.schemas import UsageView
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.http_errors import error_responses_doc

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "",
    response_model=UsageView,
    summary="Get usage",
    responses=error_responses_doc(401, 500),
)
async def get_usage(tenant: TenantDep, store: StoreDep) -> UsageView:
    """Totals over all of the tenant's calls; `by_status` lists every status, zeros too."""
    usage = await store.usage(tenant.tenant_id)
    return UsageView(
        total_calls=usage.total_calls,
        total_seconds=usage.total_seconds,
        active_calls=usage.active_calls,
        by_status={s.value: usage.by_status.get(s.value, 0) for s in CallStatus},
    )
