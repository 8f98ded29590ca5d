"""The provider callback endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from switchboard_ingest.deps import IngestDep, SessionIngestDep
from switchboard_shared.calls.callback_signing import REFERENCE_PARAMETER
from switchboard_shared.http.errors import error_responses_doc


class CallbackAck(BaseModel):
    status: str  # "applied" or "duplicate"


class SessionCallbackAck(BaseModel):
    # "applied", "duplicate", or "ignored" (no session of ours, or an event type that
    # says nothing of one: acknowledged, so the provider does not retry it)
    status: str


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


@router.post(
    "/v1/webhooks/providers/{provider}/sessions",
    response_model=SessionCallbackAck,
    responses=_ERRORS,
)
async def provider_session_callback(
    provider: str, request: Request, ingest: SessionIngestDep
) -> SessionCallbackAck:
    """A provider's session webhook (ElevenLabs' `post_call_transcription`), verified
    and read by its session adapter: fills the transcript the media edge missed and
    ends a session the provider says is over (docs/sessions.md)."""
    body = await request.body()
    return SessionCallbackAck(status=await ingest.receive(provider, request.headers, body))
