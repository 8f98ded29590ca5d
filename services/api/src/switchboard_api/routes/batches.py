"""`/v1/batches`: many calls of one agent at once (JSON or CSV), read with their
progress, paused, resumed and canceled."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchboard_api.batch_requests import (
    CreateBatchRequest,
    RowRules,
    build_batch,
    call_template,
    csv_batch,
    json_query_values,
)
from switchboard_api.deps import (
    BusDep,
    PageCursor,
    PageLimit,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from switchboard_api.error_codes import (
    BATCH_NOT_FOUND,
    BATCH_NOT_PAUSABLE,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_BATCH,
    INVALID_CURSOR,
    MAX_CONCURRENCY_TOO_HIGH,
    PAYLOAD_TOO_LARGE,
    TENANT_ROUTE,
    UNKNOWN_AGENT,
    VALIDATION_ERROR,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_shared.calls.batch_control import cancel_not_dialed, release_held
from switchboard_shared.domain.batches import (
    Batch,
    BatchFilter,
    BatchState,
    BatchStatus,
    BatchSummary,
    BatchView,
)
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.errors import Conflict, NotFound
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import ApiError, clip, error_responses_doc
from switchboard_shared.ports import IdempotencyConflict, Store

router = APIRouter(prefix="/v1/batches", tags=["batches"], route_class=JsonApiRoute)
# Bodies the create route parses itself (JSON or CSV): documented by the app.
BODY_MODELS = (CreateBatchRequest,)

_ACTIVE = frozenset({BatchState.ACTIVE})
_PAUSED = frozenset({BatchState.PAUSED})
_NOT_CANCELED = frozenset({BatchState.ACTIVE, BatchState.PAUSED})


class CreateBatchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "0b7e3c1a-2f4d-4e5a-9b6c-7d8e9f0a1b2c",
                    "status": "running",
                    "total": 2000,
                    "skipped_blocked": 0,
                }
            ]
        }
    )

    batch_id: str
    status: BatchStatus
    total: int
    skipped_blocked: int = 0


class BatchList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "batch_id": "0b7e3c1a-2f4d-4e5a-9b6c-7d8e9f0a1b2c",
                            "status": "running",
                            "name": "March reminders",
                            "agent": "altynai",
                            "total": 2000,
                            "skipped_blocked": 0,
                            "created_at": "2026-01-15T09:30:00Z",
                            "started_at": "2026-01-15T09:30:01Z",
                            "metadata": {},
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    data: list[BatchSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


async def tenant_batch(store: Store, tenant: Tenant, batch_id: str) -> Batch:
    try:
        canonical = str(uuid.UUID(batch_id))
    except ValueError:
        canonical = None
    batch = await store.get_batch(canonical, tenant.tenant_id) if canonical else None
    if batch is None:
        raise NotFound("batch_not_found", f"no batch '{clip(batch_id)}'")
    return batch


async def _view(store: Store, batch: Batch) -> BatchView:
    return BatchView.of(batch, await store.batch_progress(batch.batch_id))


def _validated(parse: Any, *args: Any) -> CreateBatchRequest:
    try:
        request: CreateBatchRequest = parse(*args)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return request


@router.post(
    "",
    status_code=201,
    response_model=CreateBatchResponse,
    summary="Create a batch",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CreateBatchRequest"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
    responses=error_responses_doc(
        *TENANT_ROUTE,
        PAYLOAD_TOO_LARGE,
        VALIDATION_ERROR,
        INVALID_BATCH,
        UNKNOWN_AGENT,
        MAX_CONCURRENCY_TOO_HIGH,
        IDEMPOTENCY_KEY_REUSED,
    ),
)
async def create_batch(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    allow_duplicates: Annotated[bool, Query(description="Accept one phone twice.")] = False,
    skip_blocked: Annotated[
        bool, Query(description="Skip (and count) rows of blocked numbers.")
    ] = False,
    agent: Annotated[str | None, Query(description="CSV only: the agent.")] = None,
    name: Annotated[str | None, Query(description="CSV only.")] = None,
    scheduled_at: Annotated[str | None, Query(description="CSV only: ISO 8601.")] = None,
    max_concurrency: Annotated[int | None, Query(description="CSV only.")] = None,
    calling_window: Annotated[
        str | None,
        Query(
            description='CSV only: the JSON `calling_window` object, e.g. `{"start": "09:00", '
            '"end": "20:00", "timezone": "auto"}` (URL-encoded).'
        ),
    ] = None,
    retry: Annotated[
        str | None,
        Query(
            description='CSV only: the JSON `retry` object, e.g. `{"on": ["no_answer"], '
            '"max_attempts": 3, "delay_seconds": 1800}` (URL-encoded).'
        ),
    ] = None,
    metadata: Annotated[
        str | None, Query(description="CSV only: the JSON `metadata` object (URL-encoded).")
    ] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> CreateBatchResponse:
    """Create up to 100,000 calls at once: JSON `{"agent", "calls": [{"phone",
    "variables", "metadata"}], ...}` or `text/csv` (a `phone` column plus one column per
    variable; the agent and options as query parameters). All or nothing: any bad row is
    `422 invalid_batch` listing the first 100 bad rows; nothing is created."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith("text/csv"):
        options = {
            key: value
            for key, value in {
                "agent": agent,
                "name": name,
                "scheduled_at": scheduled_at,
                "max_concurrency": max_concurrency,
                **json_query_values(
                    {"calling_window": calling_window, "retry": retry, "metadata": metadata}
                ),
            }.items()
            if value is not None
        }
        parsed = _validated(csv_batch, body.decode("utf-8", "replace"), options)
    else:
        parsed = _validated(CreateBatchRequest.model_validate_json, body)
    rules = RowRules(allow_duplicates=allow_duplicates, skip_blocked=skip_blocked)
    batch, calls = await build_batch(store, tenant, parsed, rules, idempotency_key)
    try:
        stored, created = await store.insert_batch(
            batch,
            call_template(tenant, batch),
            calls,
            idempotency_ttl_seconds=settings.idempotency_ttl_hours * 3600,
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        ) from exc
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    initial = (
        BatchStatus.SCHEDULED
        if calls and all(c.scheduled_at for c in calls)
        else (BatchStatus.RUNNING)
    )
    return CreateBatchResponse(
        batch_id=stored.batch_id,
        status=initial,
        total=stored.total,
        skipped_blocked=stored.skipped_blocked,
    )


@router.get(
    "",
    response_model=BatchList,
    summary="List batches",
    responses=error_responses_doc(*TENANT_ROUTE, INVALID_CURSOR, VALIDATION_ERROR),
)
async def list_batches(
    tenant: TenantDep,
    store: StoreDep,
    limit: PageLimit = 20,
    cursor: PageCursor = None,
    status: Annotated[
        BatchStatus | None,
        Query(description="Only batches in this status (as the listing shows it)."),
    ] = None,
    agent: Annotated[str | None, Query(description="Only batches of this agent.")] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601; batches created strictly after.")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="ISO 8601; batches created strictly before.")
    ] = None,
) -> BatchList:
    """The tenant's batches, newest first, with cursor pagination (as `GET /v1/calls`).

    Each item is the batch without its call counts (`GET /v1/batches/{id}` has them);
    its `status` is read from the batch's record, so a batch whose last call just ended
    is listed `completed` once its `batch.completed` was sent (within seconds)."""
    filters = BatchFilter(
        status=status, agent=agent, created_after=created_after, created_before=created_before
    )
    page = await store.list_batches(tenant.tenant_id, filters, limit, cursor)
    now = utcnow()
    return BatchList(
        data=[BatchSummary.of(b, now) for b in page.batches], next_cursor=page.next_cursor
    )


@router.get(
    "/{batch_id}",
    response_model=BatchView,
    summary="Get a batch",
    responses=error_responses_doc(*TENANT_ROUTE, BATCH_NOT_FOUND),
)
async def get_batch(batch_id: str, tenant: TenantDep, store: StoreDep) -> BatchView:
    """The batch with its calls counted by status (every status listed) and the attempts
    made; list its calls with `GET /v1/calls?batch_id=`."""
    return await _view(store, await tenant_batch(store, tenant, batch_id))


@router.post(
    "/{batch_id}/pause",
    response_model=BatchView,
    summary="Pause a batch",
    responses=error_responses_doc(*TENANT_ROUTE, BATCH_NOT_FOUND, BATCH_NOT_PAUSABLE),
)
async def pause_batch(batch_id: str, tenant: TenantDep, store: StoreDep) -> BatchView:
    """No call of the batch is dialed (again) until it is resumed; live calls finish.
    Pausing a paused batch changes nothing; a canceled batch is a 409."""
    batch = await tenant_batch(store, tenant, batch_id)
    if batch.state is BatchState.CANCELED:
        raise Conflict("batch_not_pausable", "the batch is canceled")
    paused = await store.set_batch_state(batch.batch_id, BatchState.PAUSED, from_states=_ACTIVE)
    return await _view(store, paused or await tenant_batch(store, tenant, batch_id))


@router.post(
    "/{batch_id}/resume",
    response_model=BatchView,
    summary="Resume a batch",
    responses=error_responses_doc(*TENANT_ROUTE, BATCH_NOT_FOUND, BATCH_NOT_PAUSABLE),
)
async def resume_batch(batch_id: str, tenant: TenantDep, store: StoreDep) -> BatchView:
    """Calls held by the pause are due again when they were (at once if that passed)."""
    batch = await tenant_batch(store, tenant, batch_id)
    if batch.state is BatchState.CANCELED:
        raise Conflict("batch_not_pausable", "the batch is canceled")
    await store.set_batch_state(batch.batch_id, BatchState.ACTIVE, from_states=_PAUSED)
    await release_held(store, batch.batch_id)
    return await _view(store, await tenant_batch(store, tenant, batch_id))


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchView,
    summary="Cancel a batch",
    responses=error_responses_doc(*TENANT_ROUTE, BATCH_NOT_FOUND),
)
async def cancel_batch(batch_id: str, tenant: TenantDep, store: StoreDep, bus: BusDep) -> BatchView:
    """Calls not yet dialed become `canceled` (each with its `call.completed`); live ones
    finish and are not redialed. Canceling again changes nothing."""
    batch = await tenant_batch(store, tenant, batch_id)
    await store.set_batch_state(batch.batch_id, BatchState.CANCELED, from_states=_NOT_CANCELED)
    await cancel_not_dialed(store, bus, batch.batch_id)
    return await _view(store, await tenant_batch(store, tenant, batch_id))
