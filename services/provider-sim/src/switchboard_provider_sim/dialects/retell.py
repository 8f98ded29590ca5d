"""Retell's API as the simulator plays it (`POST /v2/create-phone-call`,
`GET /v2/get-call/{call_id}`), and its webhooks: `{"event": "call_started" |
"call_ended" | "call_analyzed", "call": {<call object>}}` signed with
`x-retell-signature` by the Retell API key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from switchboard_provider_sim.calls import SimCall, SimStatus
from switchboard_provider_sim.deps import SimulatorDep
from switchboard_provider_sim.lifecycle import (
    VOICEMAIL,
    CallbackFormat,
    CreateRequest,
    analysis_for,
)
from switchboard_provider_sim.recordings import public_base, recording_url
from switchboard_shared.calls.provider_signatures import RETELL
from switchboard_shared.runtime.settings import Settings

NAME = "retell"

STATUSES: dict[SimStatus, str] = {
    SimStatus.QUEUED: "registered",
    SimStatus.RINGING: "registered",
    SimStatus.IN_PROGRESS: "ongoing",
    SimStatus.COMPLETED: "ended",
    SimStatus.CANCELED: "ended",
    SimStatus.NO_ANSWER: "not_connected",
    SimStatus.BUSY: "not_connected",
    SimStatus.FAILED: "error",
}
# SimCall.ended_by -> Retell's disconnection_reason
DISCONNECTION_REASONS: dict[str, str] = {
    "customer_hangup": "user_hangup",
    VOICEMAIL: "voicemail_reached",
    "error": "error_unknown",
    "no_answer": "dial_no_answer",
    "busy": "dial_busy",
    "canceled": "agent_hangup",
}


class CreatePhoneCallBody(BaseModel):
    from_number: str
    to_number: str
    override_agent_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    retell_llm_dynamic_variables: dict[str, Any] = Field(default_factory=dict)


def _millis(moment: datetime | None) -> int | None:
    return round(moment.timestamp() * 1000) if moment else None


def render(call: SimCall, *, analyzed: bool = True) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": call.id,
        "agent_id": call.agent_id,
        "call_status": STATUSES[call.status],
        "direction": "outbound",
        "from_number": call.from_number,
        "to_number": call.to_number,
        "metadata": {"switchboard_call_id": call.reference} if call.reference else {},
        "retell_llm_dynamic_variables": call.variables,
        "start_timestamp": _millis(call.answered_at),
        "end_timestamp": _millis(call.ended_at),
        "duration_ms": (call.duration or 0) * 1000 if call.status.is_final else None,
        "transcript": call.transcript,
        "recording_url": recording_url(call),
        "disconnection_reason": DISCONNECTION_REASONS.get(call.ended_by or ""),
    }
    if analyzed and call.status.is_final:
        analysis = analysis_for(call)
        rendered["call_analysis"] = {
            "call_summary": analysis["summary"] if analysis else None,
            "in_voicemail": call.ended_by == VOICEMAIL,
            "user_sentiment": "Positive" if analysis else "Unknown",
            "call_successful": bool(analysis),
            "custom_analysis_data": analysis["fields"] if analysis else {},
        }
    return rendered


def callback_body(call: SimCall) -> list[dict[str, Any]] | None:
    """call_started once answered; call_ended (without the analysis), then
    call_analyzed once it ends. Retell has no ringing event."""
    if call.status is SimStatus.IN_PROGRESS:
        return [{"event": "call_started", "call": render(call)}]
    if not call.status.is_final:
        return None
    messages = [{"event": "call_ended", "call": render(call, analyzed=False)}]
    if call.answered_at is not None:
        messages.append({"event": "call_analyzed", "call": render(call)})
    return messages


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "code": code}


def callback_format(settings: Settings, callback_base: str) -> CallbackFormat:
    url = f"{callback_base}/v1/webhooks/providers/{NAME}"
    return CallbackFormat(
        body=callback_body,
        url=lambda call: url,
        scheme=RETELL,
        # Retell signs webhooks with the account's API key.
        secret=settings.retell.api_key.get_secret_value(),
        new_id=lambda: uuid.uuid4().hex,
    )


router = APIRouter(tags=["retell"])


@router.post("/v2/create-phone-call", status_code=201)
async def create_phone_call(
    sim: SimulatorDep, body: CreatePhoneCallBody, request: Request
) -> JSONResponse:
    reference = body.metadata.get("switchboard_call_id")
    create = CreateRequest(
        to_number=body.to_number,
        from_number=body.from_number,
        agent_id=body.override_agent_id or "number-default-agent",
        variables=body.retell_llm_dynamic_variables,
        callback_url=None,
        # Retell documents no idempotency key; the simulator honours the header.
        idempotency_key=request.headers.get("idempotency-key"),
        reference=reference if isinstance(reference, str) else None,
        base_url=public_base(request),
    )
    call, created = await sim.create(NAME, create)
    return JSONResponse(render(call), status_code=201 if created else 200)


@router.get("/v2/get-call/{call_id}")
async def get_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return render(sim.get(call_id))
