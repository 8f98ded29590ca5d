"""Turning a `POST /v1/sessions` body into a session: the tenant's defaults, the agent's,
limits and the idempotency fingerprint."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from switchboard_api.call_requests import (
    MAX_METADATA_BYTES,
    MAX_VARIABLES_BYTES,
    check_json_size,
    compact_json,
    may_use_agent,
)
from switchboard_api.session_schemas import CreateSessionRequest
from switchboard_shared.calls.agent_defaults import tenant_config
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.errors import InvalidRequest
from switchboard_shared.domain.sessions import Session
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import clip
from switchboard_shared.ports import Store
from switchboard_shared.runtime.settings import Settings


async def build_session(
    store: Store,
    tenant: Tenant,
    api_key_id: str,
    body: CreateSessionRequest,
    idempotency_key: str | None,
    settings: Settings,
) -> Session:
    """The active session to insert: each value from the request, else the agent's
    (prompt, language), else the tenant's configuration.

    Raises InvalidRequest (422): `unknown_agent`, `variables_too_large`,
    `metadata_too_large`.
    """
    config = await tenant_config(store, tenant.tenant_id)
    agent = None
    if body.agent is not None:
        agent = await store.get_agent(body.agent)
        if agent is None or not may_use_agent(agent, tenant):
            raise InvalidRequest(
                "unknown_agent", f"no agent '{clip(body.agent)}' is available; see GET /v1/agents"
            )
    variables = body.variables or {}
    metadata = body.metadata or {}
    check_json_size("variables", variables, MAX_VARIABLES_BYTES)
    check_json_size("metadata", metadata, MAX_METADATA_BYTES)
    # The agent's own prompt and language, where it has them, beat the tenant's defaults.
    agent_prompt = agent.prompt if agent else None
    agent_language = agent.language if agent else None
    started_at = utcnow()
    max_duration = body.max_duration or config.max_duration
    session = Session(
        tenant_id=tenant.tenant_id,
        api_key_id=api_key_id,
        tier=body.tier or config.tier,
        agent=agent.key if agent else None,
        prompt=body.prompt or agent_prompt or config.prompt,
        language=body.language or agent_language or config.language,
        max_duration=max_duration,
        started_at=started_at,
        expires_at=started_at + timedelta(seconds=max_duration),
        # Unjoined by then (its join token expired, plus the grace), the sweep ends it.
        alive_until=started_at
        + timedelta(
            seconds=settings.session_join_token_seconds + settings.session_disconnect_grace_seconds
        ),
        variables=variables,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    if idempotency_key:
        # The request as asked (not as filled in): a retry is the same request even if
        # the configuration changed meanwhile.
        asked = body.model_dump(mode="json", exclude_none=True)
        session.request_fingerprint = hashlib.sha256(compact_json(asked)).hexdigest()
    return session
