"""Turning a `POST /v1/calls` body into a call: validation, limits and the fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from switchboard_api.schemas import CreateCallRequest
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.errors import InvalidRequest
from switchboard_shared.domain.phone import InvalidPhoneNumber, normalize_e164
from switchboard_shared.domain.scheduling import CallingWindow, first_attempt_at
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import clip
from switchboard_shared.ports import Store
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.webhooks.url_guard import UnresolvableHost, UnsafeUrl, check_url

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
    refused = InvalidRequest(
        "invalid_webhook_url", "webhook_url must be an absolute http:// or https:// URL"
    )
    try:
        parts = urlsplit(url)  # raises on a bad bracketed host ("https://[zz]/")
        hostname = parts.hostname
    except ValueError:
        raise refused from None
    if (
        len(url) > MAX_WEBHOOK_URL_LENGTH
        or parts.scheme not in ("http", "https")
        or not hostname
        or any(ch.isspace() for ch in url)
    ):
        raise refused
    return url


def check_json_size(name: str, value: dict[str, Any], limit: int) -> None:
    if not value:
        return  # `{}`: far below any limit (a batch's rows mostly have no metadata)
    # The size of compact JSON does not depend on key order: no sorting needed here.
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise InvalidRequest(
            f"{name}_too_large", f"{name} is {size} bytes as JSON; the limit is {limit}"
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
        raise InvalidRequest("invalid_webhook_url", f"webhook_url refused: {clip(exc)}") from None


@dataclass(frozen=True)
class FirstAttempt:
    """When a new call's first attempt is due: None for at once (the call is `queued`)."""

    due: datetime | None


def first_attempt(
    phone: str, scheduled_at: datetime | None, window: CallingWindow | None
) -> FirstAttempt:
    """When the first attempt of a call to `phone` is due. Raises InvalidRequest
    `calling_window_never_opens` when the number's zones share no opening of the window."""
    now = utcnow()
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        scheduled_at = scheduled_at.replace(tzinfo=UTC)  # no offset means UTC, as everywhere
    due = first_attempt_at(scheduled_at, window, window.zones_for(phone) if window else [], now)
    if due is None:
        raise InvalidRequest(
            "calling_window_never_opens",
            "the calling window never opens in every time zone of this number; "
            "name the recipient's timezone",
        )
    return FirstAttempt(due if due > now else None)


async def build_call(
    store: Store,
    tenant: Tenant,
    body: CreateCallRequest,
    idempotency_key: str | None,
    settings: Settings,
) -> Call:
    """Validate `body` for `tenant` and return the call to insert (status queued).

    Raises InvalidRequest (422): `invalid_phone`, `unknown_agent`, `variables_too_large`,
    `metadata_too_large`, `invalid_webhook_url`, `calling_window_never_opens`,
    `number_blocked`. A call not
    due yet is `scheduled` and publishes nothing until the dispatcher queues it.
    """
    try:
        phone = normalize_e164(body.phone)
    except InvalidPhoneNumber as exc:
        raise InvalidRequest("invalid_phone", str(exc)) from exc
    if await store.blocked_among(tenant.tenant_id, [phone]):
        raise InvalidRequest("number_blocked", "calls to this number are blocked")
    agent = await store.get_agent(body.agent)
    if agent is None or not may_use_agent(agent, tenant):
        # One answer for unknown, disabled and not-allowed: which agents exist is private.
        raise InvalidRequest(
            "unknown_agent", f"no agent '{clip(body.agent)}' is available; see GET /v1/agents"
        )
    variables = body.variables or {}
    metadata = body.metadata or {}
    check_json_size("variables", variables, MAX_VARIABLES_BYTES)
    check_json_size("metadata", metadata, MAX_METADATA_BYTES)
    webhook_url = _check_webhook_url(body.webhook_url) if body.webhook_url else None
    if webhook_url:
        await _guard_webhook_url(webhook_url, settings)
    start = first_attempt(phone, body.scheduled_at, body.calling_window)
    window = body.calling_window.model_dump(mode="json") if body.calling_window else None
    retry = body.retry.model_dump(mode="json") if body.retry else None
    validated = {
        "phone": phone,
        "agent": agent.key,
        "variables": variables,
        "metadata": metadata,
        "webhook_url": webhook_url,
        "scheduled_at": body.scheduled_at.isoformat() if body.scheduled_at else None,
        "calling_window": window,
        "retry": retry,
    }
    return Call(
        status=CallStatus.SCHEDULED if start.due else CallStatus.QUEUED,
        scheduled_at=start.due,
        next_attempt_at=start.due,
        calling_window=window,
        retry=retry,
        # Nothing to announce until the dispatcher queues it (its `call.requested`).
        publish_pending=start.due is None,
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
