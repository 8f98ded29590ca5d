"""`/v1/agents`: the internal agents the key's tenant may call with."""

from __future__ import annotations

from fastapi import APIRouter

from switchboard_api.call_requests import may_use_agent
from switchboard_api.deps import StoreDep, TenantDep
from switchboard_api.error_codes import (
    TENANT_ROUTE,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_api.schemas import AgentList
from switchboard_shared.calls.agent_defaults import tenant_config
from switchboard_shared.http.errors import error_responses_doc

router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=JsonApiRoute)


@router.get(
    "",
    response_model=AgentList,
    summary="List agents",
    responses=error_responses_doc(*TENANT_ROUTE),
)
async def list_agents(tenant: TenantDep, store: StoreDep) -> AgentList:
    """Enabled agents this tenant may use: key, name, description and language only."""
    agents = await store.list_agents()
    language = (await tenant_config(store, tenant.tenant_id)).language
    return AgentList(data=[a.public_view(language) for a in agents if may_use_agent(a, tenant)])
