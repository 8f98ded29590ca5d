"""`/v1/config`: the key's tenant's defaults for new sessions."""

from __future__ import annotations

from fastapi import APIRouter

from switchboard_api.config_schemas import ConfigView, UpdateConfigRequest
from switchboard_api.deps import StoreDep, TenantDep
from switchboard_api.error_codes import PAYLOAD_TOO_LARGE, TENANT_ROUTE, VALIDATION_ERROR
from switchboard_api.json_body import JsonApiRoute
from switchboard_shared.calls.agent_defaults import tenant_config
from switchboard_shared.domain.tenant_config import TenantConfig
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import error_responses_doc
from switchboard_shared.ports import Store

router = APIRouter(prefix="/v1/config", tags=["config"], route_class=JsonApiRoute)


async def _view(store: Store, tenant: Tenant, config: TenantConfig) -> ConfigView:
    endpoint = await store.get_webhook_endpoint(tenant.tenant_id)
    return ConfigView(
        tier=config.tier,
        prompt=config.prompt,
        language=config.language,
        max_duration=config.max_duration,
        webhook_url=endpoint.url if endpoint else None,
    )


@router.get(
    "",
    response_model=ConfigView,
    summary="Get the configuration",
    responses=error_responses_doc(*TENANT_ROUTE),
)
async def get_config(tenant: TenantDep, store: StoreDep) -> ConfigView:
    """The defaults every new session of the tenant starts from."""
    return await _view(store, tenant, await tenant_config(store, tenant.tenant_id))


@router.put(
    "",
    response_model=ConfigView,
    summary="Change the configuration",
    responses=error_responses_doc(*TENANT_ROUTE, PAYLOAD_TOO_LARGE, VALIDATION_ERROR),
)
async def update_config(
    body: UpdateConfigRequest, tenant: TenantDep, store: StoreDep
) -> ConfigView:
    """Change any of `tier`, `prompt`, `language`, `max_duration`; returns the whole new
    configuration. Sessions already started keep the values they started with."""
    fields = set(body.model_fields_set)
    if fields:
        config = await store.update_config(tenant.tenant_id, body, fields)
    else:
        config = await tenant_config(store, tenant.tenant_id)
    return await _view(store, tenant, config)
