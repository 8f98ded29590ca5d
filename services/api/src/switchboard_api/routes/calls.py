"""`/v1/calls`: create, read, list and cancel calls of the key's tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from opentelemetry import propagate

from switchboard_api.call_requests import build_call
from switchboard_api.deps import (
    BusDep,
    PageCursor,
    PageLimit,
    PublisherDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from switchboard_api.error_codes import (
    BROKER_UNAVAILABLE,
    CALL_NOT_CANCELABLE,
    CALL_NOT_FOUND,
    CALLING_WINDOW_NEVER_OPENS,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_CURSOR,
    INVALID_PHONE,
    INVALID_WEBHOOK_URL,
    METADATA_TOO_LARGE,
    NUMBER_BLOCKED,
    PAYLOAD_TOO_LARGE,
    TENANT_ROUTE,
    UNKNOWN_AGENT,
    VALIDATION_ERROR,
    VARIABLES_TOO_LARGE,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_api.schemas import CallList, CreateCallRequest, CreateCallResponse
from switchboard_shared.calls import outbox
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import LIVE_STATUSES, Call, CallFilter, CallStatus, CallView
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import ApiError, clip, error_responses_doc
from switchboard_shared.observability.metrics import CALLS_CREATED
from switchboard_shared.ports import IdempotencyConflict, PublishError, Store

router = APIRouter(prefix="/v1/calls", tags=["calls"], route_class=JsonApiRoute)

# Each round re-reads a call whose status moved under us; a few rounds settle any race.
_CANCEL_ROUNDS = 3
_NOT_DIALED = frozenset({CallStatus.SCHEDULED, CallStatus.QUEUED})


async def tenant_call(store: Store, tenant: Tenant, call_id: str) -> Call:
    """The key's tenant's call `call_id`; 404 `call_not_found` for any other."""
    try:
        canonical = str(uuid.UUID(call_id))
    except ValueError:
        canonical = None
    call = await store.get_call(canonical, tenant.tenant_id) if canonical else None
    if call is None:
        raise ApiError(404, "call_not_found", f"no call '{clip(call_id)}'")
    return call


def _as_utc(moment: datetime | None) -> datetime | None:
    # A timestamp without offset means UTC, as everywhere in this API.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@router.post(
    "",
    status_code=201,
    response_model=CreateCallResponse,
    summary="Create a call",
    responses=error_responses_doc(
        *TENANT_ROUTE,
        PAYLOAD_TOO_LARGE,
        VALIDATION_ERROR,
        INVALID_PHONE,
        NUMBER_BLOCKED,
        UNKNOWN_AGENT,
        VARIABLES_TOO_LARGE,
        METADATA_TOO_LARGE,
        INVALID_WEBHOOK_URL,
        CALLING_WINDOW_NEVER_OPENS,
        IDEMPOTENCY_KEY_REUSED,
    ),
)
async def create_call(
    body: CreateCallRequest,
    tenant: TenantDep,
    store: StoreDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Retry-safe creation: the same key and body return the first call.",
        ),
    ] = None,
) -> CreateCallResponse:
    """Queue an outbound call to `phone` through the internal `agent`, or schedule it:
    with a `scheduled_at` in the future or a `calling_window` that is closed now the
    call is `scheduled` and dialed when due; a `retry` policy redials it.

    With an `Idempotency-Key`, repeating the request with the same body within the
    idempotency window returns the original 201 (header `Idempotent-Replayed: true`);
    the same key with another body is a 422 `idempotency_key_reused`.
    """
    call = await build_call(store, tenant, body, idempotency_key, settings)
    # Provider callbacks carry no trace headers; they rejoin this trace through the call.
    trace_context: dict[str, str] = {}
    propagate.inject(trace_context)
    call.trace_context = trace_context
    try:
        stored, created = await store.insert_call(
            call, idempotency_ttl_seconds=settings.idempotency_ttl_hours * 3600
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        ) from exc
    if created:
        CALLS_CREATED.labels(stored.agent).inc()
        if stored.publish_pending:
            # Stored pending, so never lost: published just after this answer.
            publisher.submit(stored)
    else:
        response.headers["Idempotent-Replayed"] = "true"
    # The original response of a replay is the creation's: the call was queued then, or
    # scheduled when its first attempt was not due yet.
    initial = CallStatus.SCHEDULED if stored.scheduled_at is not None else CallStatus.QUEUED
    return CreateCallResponse(call_id=stored.call_id, status=initial)


@router.get(
    "",
    response_model=CallList,
    summary="List calls",
    responses=error_responses_doc(*TENANT_ROUTE, INVALID_CURSOR, VALIDATION_ERROR),
)
async def list_calls(
    tenant: TenantDep,
    store: StoreDep,
    limit: PageLimit = 20,
    cursor: PageCursor = None,
    status: Annotated[CallStatus | None, Query(description="Only calls in this status.")] = None,
    agent: Annotated[str | None, Query(description="Only calls of this agent.")] = None,
    batch_id: Annotated[str | None, Query(description="Only calls of this batch.")] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601; calls created strictly after.")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="ISO 8601; calls created strictly before.")
    ] = None,
) -> CallList:
    """The tenant's calls, newest first, with cursor pagination.

    New calls created while paging never shift later pages: a cursor continues right
    after the last call it was issued for.
    """
    filters = CallFilter(
        status=status,
        agent=agent,
        batch_id=batch_id,
        created_after=_as_utc(created_after),
        created_before=_as_utc(created_before),
    )
    # An unreadable cursor is a 400 `invalid_cursor` (the app's InvalidCursor handler).
    page = await store.list_calls(tenant.tenant_id, filters, limit, cursor)
    return CallList(data=[c.public_view() for c in page.calls], next_cursor=page.next_cursor)


@router.get(
    "/{call_id}",
    response_model=CallView,
    summary="Get a call",
    responses=error_responses_doc(*TENANT_ROUTE, CALL_NOT_FOUND),
)
async def get_call(call_id: str, tenant: TenantDep, store: StoreDep) -> CallView:
    """The normalized call: status, transcript, duration and timestamps."""
    return (await tenant_call(store, tenant, call_id)).public_view()


@router.post(
    "/{call_id}/cancel",
    response_model=CallView,
    summary="Cancel a call",
    responses={
        202: {"model": CallView, "description": "Hang-up requested for a live call"},
        **error_responses_doc(
            *TENANT_ROUTE, CALL_NOT_FOUND, CALL_NOT_CANCELABLE, BROKER_UNAVAILABLE
        ),
    },
)
async def cancel_call(
    call_id: str, tenant: TenantDep, store: StoreDep, bus: BusDep, response: Response
) -> CallView:
    """Cancel a scheduled or queued call (200, now `canceled`: no attempt follows) or hang
    up a live one (202: the call ends shortly with status `canceled`, and is not
    redialed). A call that already ended is a 409."""
    call = await tenant_call(store, tenant, call_id)
    for _ in range(_CANCEL_ROUNDS):
        if call.status in _NOT_DIALED:
            canceled = await outbox.transition(
                store,
                bus,
                call.call_id,
                CallStatus.CANCELED,
                CallChanges(ended_reason=EndedReason.CANCELED_BY_CUSTOMER),
                # A dialer may have taken it meanwhile: then it needs a hang-up instead.
                guard=CallGuard(statuses=_NOT_DIALED),
            )
            if canceled is not None:
                return canceled.public_view()
        elif call.status in LIVE_STATUSES:
            flagged = await store.update_call(
                call.call_id,
                CallChanges(cancel_requested=True),
                guard=CallGuard(statuses=LIVE_STATUSES),
            )
            if flagged is not None:
                await _request_hang_up(bus, flagged)
                response.status_code = 202
                return flagged.public_view()
        else:
            break
        call = await tenant_call(store, tenant, call_id)
    raise ApiError(409, "call_not_cancelable", f"the call is already {call.status.value}")


async def _request_hang_up(bus: BusDep, call: Call) -> None:
    event = Event(
        type=EventType.CALL_CANCEL_REQUESTED,
        tenant_id=call.tenant_id,
        call_id=call.call_id,
        sequence=call.sequence,
    )
    try:
        await bus.publish(event)
    except PublishError as exc:
        raise ApiError(
            503, "broker_unavailable", "the hang-up could not be requested now; retry shortly"
        ) from exc
