"""Request dependencies as `Annotated` aliases, so route signatures read like prose."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, cast

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from switchboard_api.auth import bearer_scheme, caller_of
from switchboard_api.rate_limit import TenantRateLimiter
from switchboard_shared.calls.outbox import DeferredPublisher
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import ApiError
from switchboard_shared.ports import Bus, Provider, Store
from switchboard_shared.runtime.settings import Settings

# RFC 6750: tell the client which scheme to use, and whether the token itself was bad.
_ASK_FOR_KEY = {"WWW-Authenticate": 'Bearer realm="switchboard"'}
_BAD_KEY = {"WWW-Authenticate": 'Bearer realm="switchboard", error="invalid_token"'}


# These are `async def` though they never await: FastAPI runs a plain `def` dependency
# in its thread pool: a thread hop per dependency per request, which py-spy showed
# among the largest costs of POST /v1/calls.
# app.state is untyped: create_app puts these there, so the casts hold.
async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


async def get_bus(request: Request) -> Bus:
    return cast(Bus, request.app.state.bus)


async def get_publisher(request: Request) -> DeferredPublisher:
    return cast(DeferredPublisher, request.app.state.publisher)


async def get_providers(request: Request) -> Mapping[str, Provider]:
    return cast(Mapping[str, Provider], request.app.state.providers)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ProvidersDep = Annotated[Mapping[str, Provider], Depends(get_providers)]
# The paging parameters of every list route.
PageLimit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
PageCursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
StoreDep = Annotated[Store, Depends(get_store)]
BusDep = Annotated[Bus, Depends(get_bus)]
PublisherDep = Annotated[DeferredPublisher, Depends(get_publisher)]


async def current_tenant(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Tenant:
    """The tenant of the request's Bearer key; 401 `unauthorized` otherwise, 429
    `rate_limited` (with `Retry-After`) when the tenant is over its request rate."""
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or malformed Authorization header: send 'Authorization: Bearer <API key>'",
            headers=_ASK_FOR_KEY,
        )
    caller = await caller_of(store, credentials.credentials)
    if caller is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=_BAD_KEY)
    tenant, key = caller
    # Routes with a per-key rule (one active session per key) read it back.
    request.state.api_key_id = key.key_id
    limiter: TenantRateLimiter | None = request.app.state.rate_limiter
    if limiter is not None and (wait := limiter.take(tenant.tenant_id)) is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for this API key; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


async def current_api_key_id(request: Request, tenant: TenantDep) -> str:
    """The id of the request's API key (authenticated by `current_tenant`)."""
    key_id: str = request.state.api_key_id
    return key_id


ApiKeyIdDep = Annotated[str, Depends(current_api_key_id)]
