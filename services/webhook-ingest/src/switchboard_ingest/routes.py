"""The provider callback endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from switchboard_ingest.deps import IngestDep
from switchboard_shared.calls.callback_signing import REFERENCE_PARAMETER
from switchboard_shared.http.errors import error_responses_doc


class CallbackAck(BaseModel):
    status: str  # "applied" or "duplicate"


router = APIRouter(tags=["provider callbacks"])
_ERRORS = error_responses_doc(400, 401, 404, 413)


@router.post("/v1/webhooks/call-completed", response_model=CallbackAck, responses=_ERRORS)
async def call_completed(request: Request, ingest: IngestDep) -> CallbackAck:
    """The normalized callback: `{"event_type", "provider_call_id", "status",
    "transcript", "duration"}`, HMAC-signed (`X-Switchboard-Timestamp`,
    `X-Switchboard-Signature`) with a provider's callback secret."""
    body = await request.body()
    reference = request.query_params.get(REFERENCE_PARAMETER)
    return CallbackAck(status=await ingest.generic(request.headers, body, reference))


@router.post("/v1/webhooks/providers/{provider}", response_model=CallbackAck, responses=_ERRORS)
async def provider_callback(provider: str, request: Request, ingest: IngestDep) -> CallbackAck:
    """A provider's native callback, verified and parsed by its adapter."""
    body = await request.body()
    reference = request.query_params.get(REFERENCE_PARAMETER)
    return CallbackAck(status=await ingest.native(provider, request.headers, body, reference))
