"""API keys: a Bearer key is hashed, looked up, and resolved to its tenant."""

from __future__ import annotations

import hmac

from fastapi.security import HTTPBearer

from switchboard_shared.domain.tenants import ApiKey, Tenant, hash_api_key
from switchboard_shared.ports import Store

# auto_error=False: the scheme is declared in OpenAPI, and the 401 keeps our error shape.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="Your service API key: `Authorization: Bearer <key>`.",
)

# Longer than any key we issue; refusing early keeps hashing bounded.
_MAX_KEY_LENGTH = 512


async def tenant_for_key(store: Store, raw_key: str) -> Tenant | None:
    """The tenant owning `raw_key`, or None when the key is unknown or revoked."""
    found = await caller_of(store, raw_key)
    return found[0] if found else None


async def caller_of(store: Store, raw_key: str) -> tuple[Tenant, ApiKey] | None:
    """The tenant owning `raw_key` and the key's record, or None when the key is unknown
    or revoked.

    Only the SHA-256 of a key is stored; the stored hash is compared in constant time.
    """
    if not raw_key or len(raw_key) > _MAX_KEY_LENGTH:
        return None
    digest = hash_api_key(raw_key)
    key = await store.find_api_key(digest)
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    if key.revoked_at is not None:
        return None
    tenant = await store.get_tenant(key.tenant_id)
    return (tenant, key) if tenant else None
