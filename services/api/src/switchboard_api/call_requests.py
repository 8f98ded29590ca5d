"""Turning a `POST /v1/calls` body into a call: validation, limits and the fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from switchboard_api.schemas import CreateCallRequest
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call
from switchboard_shared.domain.phone import InvalidPhoneNumber, normalize_e164
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http_errors import ApiError
from switchboard_shared.ports import Store
from switchboard_shared.settings import Settings
from switchboard_shared.ssrf import UnresolvableHost, UnsafeUrl, check_url

MAX_VARIABLES_BYTES = 16 * 1024
MAX_METADATA_BYTES = 4 * 1024
MAX_WEBHOOK_URL_LENGTH = 2048


def compact_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8; the same data gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def may_use_agent(agent: Agent, tenant: Tenant) -> bool:
    """Enabled, and either open to every tenant or listing this tenant's name."""
    return agent.enabled and (agent.tenants is None or tenant.name in agent.tenants)


def _check_webhook_url(url: str) -> str:
    # Only the shape here; the notifier checks the resolved address against SSRF.
    parts = urlsplit(url)
    if (
        len(url) > MAX_WEBHOOK_URL_LENGTH
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() for ch in url)
    ):
        raise ApiError(
            422, "invalid_webhook_url", "webhook_url must be an absolute http:// or https:// URL"
        )
    return url


def _check_size(name: str, value: dict[str, Any], limit: int) -> None:
    size = len(compact_json(value))
    if size > limit:
        raise ApiError(
            422, f"{name}_too_large", f"{name} is {size} bytes as JSON; the limit is {limit}"
        )


async def _guard_webhook_url(url: str, settings: Settings) -> None:
    """Refuse now a URL the notifier would refuse at every send (scheme, private or
    metadata address). A host that does not resolve yet passes: DNS may come back, and
    the guard runs again before each delivery."""
    try:
        await check_url(
            url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private_networks,
        )
    except UnresolvableHost:
        return
    except UnsafeUrl as exc:
        raise ApiError(422, "invalid_webhook_url", f"webhook_url refused: {exc}") from None


async def build_call(
    store: Store,
    tenant: Tenant,
    body: CreateCallRequest,
    idempotency_key: str | None,
    settings: Settings,
) -> Call:
    """Validate `body` for `tenant` and return the call to insert (status queued).

    Raises ApiError 422: `invalid_phone`, `unknown_agent`, `variables_too_large`,
    `metadata_too_large`, `invalid_webhook_url`.
    """
    try:
        phone = normalize_e164(body.phone)
    except InvalidPhoneNumber as exc:
        raise ApiError(422, "invalid_phone", str(exc)) from exc
    agent = await store.get_agent(body.agent)
    if agent is None or not may_use_agent(agent, tenant):
        # One answer for unknown, disabled and not-allowed: which agents exist is private.
        raise ApiError(
            422, "unknown_agent", f"no agent '{body.agent}' is available; see GET /v1/agents"
        )
    variables = body.variables or {}
    metadata = body.metadata or {}
    _check_size("variables", variables, MAX_VARIABLES_BYTES)
    _check_size("metadata", metadata, MAX_METADATA_BYTES)
    webhook_url = _check_webhook_url(body.webhook_url) if body.webhook_url else None
    if webhook_url:
        await _guard_webhook_url(webhook_url, settings)
    validated = {
        "phone": phone,
        "agent": agent.key,
        "variables": variables,
        "metadata": metadata,
        "webhook_url": webhook_url,
    }
    return Call(
        tenant_id=tenant.tenant_id,
        agent=agent.key,
        phone=phone,
        variables=variables,
        metadata=metadata,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
        request_fingerprint=hashlib.sha256(compact_json(validated)).hexdigest()
        if idempotency_key
        else None,
    )
