"""`/v1/sessions`: browser voice sessions of the key's tenant, one active per API key."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response

from switchboard_api.deps import (
    ApiKeyIdDep,
    BusDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from switchboard_api.error_codes import (
    IDEMPOTENCY_KEY_REUSED,
    METADATA_TOO_LARGE,
    PAYLOAD_TOO_LARGE,
    SESSION_ACTIVE,
    SESSION_NOT_FOUND,
    TENANT_ROUTE,
    UNKNOWN_AGENT,
    VALIDATION_ERROR,
    VARIABLES_TOO_LARGE,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_api.session_requests import build_session
from switchboard_api.session_schemas import (
    CreateSessionRequest,
    CreateSessionResponse,
    Pagination,
    SessionList,
)
from switchboard_shared.domain.sessions import (
    SESSION_ID_PREFIX,
    Session,
    SessionEndReason,
    SessionStatus,
    SessionView,
)
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import ApiError, clip, error_responses_doc
from switchboard_shared.ports import ActiveSessionExists, IdempotencyConflict, Store
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.sessions import lifecycle
from switchboard_shared.sessions.join_tokens import issue_join_token

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=JsonApiRoute)

_MAX_SESSION_ID_CHARS = 64


async def tenant_session(store: Store, tenant: Tenant, session_id: str) -> Session:
    """The key's tenant's session `session_id`; 404 `session_not_found` for any other."""
    plausible = session_id.startswith(SESSION_ID_PREFIX) and len(session_id) <= 64
    session = await store.get_session(session_id, tenant.tenant_id) if plausible else None
    if session is None:
        raise ApiError(404, "session_not_found", f"no session '{clip(session_id)}'")
    return session


def join_url(settings: Settings, session: Session) -> str:
    """The media edge's URL for `session`, with a fresh single-use token."""
    token, _ = issue_join_token(
        settings.session_token_secret.get_secret_value(),
        session.session_id,
        settings.session_join_token_seconds,
    )
    base = settings.media_edge_url.rstrip("/")
    return f"{base}/sessions/{session.session_id}?token={quote(token)}"


@router.post(
    "",
    status_code=201,
    response_model=CreateSessionResponse,
    summary="Start a session",
    responses=error_responses_doc(
        *TENANT_ROUTE,
        PAYLOAD_TOO_LARGE,
        VALIDATION_ERROR,
        UNKNOWN_AGENT,
        VARIABLES_TOO_LARGE,
        METADATA_TOO_LARGE,
        IDEMPOTENCY_KEY_REUSED,
        SESSION_ACTIVE,
    ),
)
async def create_session(
    body: CreateSessionRequest,
    tenant: TenantDep,
    api_key_id: ApiKeyIdDep,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Retry-safe creation: the same key and body return the first session.",
        ),
    ] = None,
) -> CreateSessionResponse:
    """Start a voice session for a user's browser; hand the `join_url` to the browser.

    One session at a time per API key: while one is active, another is a 409
    `session_active` naming it (`error.session_id`). With an `Idempotency-Key`, a
    retried request returns the first session (header `Idempotent-Replayed: true`) with
    a fresh `join_url`.
    """
    session = await build_session(store, tenant, api_key_id, body, idempotency_key, settings)
    try:
        stored, created = await store.insert_session(
            session, idempotency_ttl_seconds=settings.idempotency_ttl_hours * 3600
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        ) from exc
    except ActiveSessionExists as exc:
        raise ApiError(
            409,
            "session_active",
            "this API key already has an active session; end it with "
            f"DELETE /v1/sessions/{exc.session_id} first",
            details={"session_id": exc.session_id},
        ) from exc
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return CreateSessionResponse(
        session_id=stored.session_id,
        status=stored.status,
        join_url=join_url(settings, stored),
        max_duration=stored.max_duration,
        tier=stored.tier,
        expires_at=stored.expires_at,
    )


@router.get(
    "",
    response_model=SessionList,
    summary="List sessions",
    responses=error_responses_doc(*TENANT_ROUTE, VALIDATION_ERROR),
)
async def list_sessions(
    tenant: TenantDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000, description="Sessions to skip.")] = 0,
    status: Annotated[
        SessionStatus | None, Query(description="Only sessions in this status.")
    ] = None,
) -> SessionList:
    """The tenant's sessions, newest first."""
    page = await store.list_sessions(tenant.tenant_id, status, limit, offset)
    return SessionList(
        sessions=[s.public_view() for s in page.sessions],
        pagination=Pagination(total=page.total, limit=limit, offset=offset),
    )


@router.get(
    "/{session_id}",
    response_model=SessionView,
    summary="Get a session",
    responses=error_responses_doc(*TENANT_ROUTE, SESSION_NOT_FOUND),
)
async def get_session(session_id: str, tenant: TenantDep, store: StoreDep) -> SessionView:
    """Status, elapsed time (live while active), end reason and transcript."""
    return (await tenant_session(store, tenant, session_id)).public_view()


@router.delete(
    "/{session_id}",
    response_model=SessionView,
    summary="End a session",
    responses=error_responses_doc(*TENANT_ROUTE, SESSION_NOT_FOUND),
)
async def end_session(
    session_id: str, tenant: TenantDep, store: StoreDep, bus: BusDep
) -> SessionView:
    """End an active session now (`reason: manual`); on an ended one, nothing changes
    and its final state is returned."""
    session = await tenant_session(store, tenant, session_id)
    if session.is_active:
        await lifecycle.end_session(store, bus, session.session_id, SessionEndReason.MANUAL)
        session = await tenant_session(store, tenant, session_id)
    return session.public_view()
