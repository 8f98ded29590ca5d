"""Turning a `POST /v1/batches` body (JSON, or CSV with the options as query parameters)
into a batch and its calls: every row is checked, and any bad row refuses the batch."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from switchboard_api.call_requests import (
    MAX_METADATA_BYTES,
    MAX_VARIABLES_BYTES,
    check_json_size,
    compact_json,
    first_attempt,
    may_use_agent,
)
from switchboard_shared.domain.batches import (
    MAX_BATCH_ROWS,
    MAX_REPORTED_ROWS,
    Batch,
    BatchCall,
)
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.errors import InvalidBatch, InvalidRequest
from switchboard_shared.domain.json_values import SafeJsonObject
from switchboard_shared.domain.phone import InvalidPhoneNumber, normalize_e164
from switchboard_shared.domain.scheduling import CallingWindow, RetryPolicy
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.http.errors import clip
from switchboard_shared.ports import Store

MAX_BATCH_CONCURRENCY = 1000


class BatchCallRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="E.164.")
    variables: SafeJsonObject | None = None
    metadata: SafeJsonObject | None = None


class CreateBatchRequest(BaseModel):
    """Body of `POST /v1/batches` (JSON)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agent": "altynai",
                    "name": "March reminders",
                    "calls": [{"phone": "+996700000000", "variables": {"name": "Aida"}}],
                    "calling_window": {"start": "09:00", "end": "20:00", "timezone": "auto"},
                    "retry": {"on": ["no_answer", "busy"], "max_attempts": 3},
                }
            ]
        },
    )

    agent: str
    calls: list[BatchCallRow] = Field(min_length=1, max_length=MAX_BATCH_ROWS)
    name: str | None = Field(default=None, max_length=200)
    scheduled_at: datetime | None = None
    calling_window: CallingWindow | None = None
    retry: RetryPolicy | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_BATCH_CONCURRENCY)
    metadata: SafeJsonObject | None = None


@dataclass(frozen=True)
class RowRules:
    allow_duplicates: bool = False
    skip_blocked: bool = False


def json_query_values(values: dict[str, str | None]) -> dict[str, Any]:
    """The CSV route's JSON-encoded query options decoded (None stays None), so they are
    then validated as the JSON body's fields; raises RequestValidationError
    (`422 validation_error`) for a value that is not JSON."""
    decoded: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, raw in values.items():
        if raw is None:
            decoded[name] = None
            continue
        try:
            decoded[name] = json.loads(raw)
        except ValueError as exc:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "msg": f"not a JSON value ({exc})",
                    "input": clip(raw),
                }
            )
    if errors:
        raise RequestValidationError(errors)
    return decoded


def csv_batch(text: str, options: dict[str, Any]) -> CreateBatchRequest:
    """A CSV body as the JSON request: a header row with `phone` and one column per
    variable (values are strings; an empty cell is left out). Raises InvalidRequest
    `invalid_batch` for a CSV without a `phone` column or with too many rows."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "phone" not in reader.fieldnames:
        raise InvalidBatch("the CSV needs a header row with a `phone` column", [])
    rows: list[dict[str, Any]] = []
    for record in reader:
        if len(rows) >= MAX_BATCH_ROWS:
            raise InvalidBatch(f"a batch has at most {MAX_BATCH_ROWS} rows", [])
        variables = {
            k: v for k, v in record.items() if k not in ("phone", None) and v not in ("", None)
        }
        rows.append({"phone": record.get("phone") or "", "variables": variables})
    return CreateBatchRequest.model_validate({**options, "calls": rows})


def _row_call(body: CreateBatchRequest, row: BatchCallRow) -> BatchCall:
    """One row's own part of its call; raises InvalidRequest with the row's error code."""
    try:
        phone = normalize_e164(row.phone)
    except InvalidPhoneNumber as exc:
        raise InvalidRequest("invalid_phone", str(exc)) from exc
    variables = row.variables or {}
    metadata = row.metadata or {}
    check_json_size("variables", variables, MAX_VARIABLES_BYTES)
    check_json_size("metadata", metadata, MAX_METADATA_BYTES)
    start = first_attempt(phone, body.scheduled_at, body.calling_window)
    # Every call of a batch flows through the dispatcher, due now or later.
    return BatchCall(
        phone=phone,
        variables=variables,
        metadata=metadata,
        next_attempt_at=start.due or utcnow(),
        scheduled_at=start.due,
    )


def call_template(tenant: Tenant, batch: Batch) -> Call:
    """What every call of `batch` shares (its rows set phone, variables, metadata, times)."""
    return Call(
        tenant_id=tenant.tenant_id,
        agent=batch.agent,
        phone="",
        batch_id=batch.batch_id,
        status=CallStatus.SCHEDULED,
        calling_window=batch.calling_window,
        retry=batch.retry,
        # Nothing to announce until the dispatcher queues it (its `call.requested`).
        publish_pending=False,
    )


async def build_batch(
    store: Store,
    tenant: Tenant,
    body: CreateBatchRequest,
    rules: RowRules,
    idempotency_key: str | None,
) -> tuple[Batch, list[BatchCall]]:
    """The batch and its calls' own parts (see `call_template`), all rows valid; raises
    InvalidRequest `unknown_agent`, or InvalidBatch listing the first bad rows (by
    number from 1) with their codes, or `max_concurrency_too_high` (over the tenant's
    `max_concurrent_calls`)."""
    agent = await store.get_agent(body.agent)
    if agent is None or not may_use_agent(agent, tenant):
        raise InvalidRequest(
            "unknown_agent", f"no agent '{clip(body.agent)}' is available; see GET /v1/agents"
        )
    if body.max_concurrency is not None and body.max_concurrency > tenant.max_concurrent_calls:
        raise InvalidRequest(
            "max_concurrency_too_high",
            f"max_concurrency {body.max_concurrency} is over the tenant's limit of "
            f"{tenant.max_concurrent_calls} concurrent calls",
        )
    batch = Batch(
        tenant_id=tenant.tenant_id,
        agent=agent.key,
        name=body.name,
        total=0,
        scheduled_at=body.scheduled_at,
        calling_window=body.calling_window.model_dump(mode="json") if body.calling_window else None,
        retry=body.retry.model_dump(mode="json") if body.retry else None,
        max_concurrency=body.max_concurrency,
        metadata=body.metadata or {},
        idempotency_key=idempotency_key,
    )
    bad: list[tuple[int, str, str]] = []
    calls: list[tuple[int, BatchCall]] = []
    seen: set[str] = set()
    for number, row in enumerate(body.calls, start=1):
        try:
            call = _row_call(body, row)
        except InvalidRequest as exc:
            bad.append((number, exc.code, exc.message))
            continue
        if call.phone in seen and not rules.allow_duplicates:
            bad.append((number, "duplicate_phone", f"{call.phone} is in the batch already"))
            continue
        seen.add(call.phone)
        calls.append((number, call))
    blocked = await store.blocked_among(tenant.tenant_id, seen)
    kept: list[BatchCall] = []
    skipped = 0
    for number, call in calls:
        if call.phone not in blocked:
            kept.append(call)
        elif rules.skip_blocked:
            skipped += 1
        else:
            bad.append((number, "number_blocked", f"calls to {call.phone} are blocked"))
    if bad:
        bad.sort()
        raise InvalidBatch(
            f"{len(bad)} of {len(body.calls)} rows are invalid; nothing was created",
            bad[:MAX_REPORTED_ROWS],
        )
    fingerprint = compact_json(
        {
            "body": body.model_dump(mode="json"),
            "rules": [rules.allow_duplicates, rules.skip_blocked],
        }
    )
    later = [call.scheduled_at for call in kept if call.scheduled_at is not None]
    batch = batch.model_copy(
        update={
            # Every call due later: the batch is scheduled until the first one is due.
            "first_due": min(later) if later and len(later) == len(kept) else None,
            "total": len(kept),
            "skipped_blocked": skipped,
            "request_fingerprint": hashlib.sha256(fingerprint).hexdigest()
            if idempotency_key
            else None,
        }
    )
    return batch, kept
