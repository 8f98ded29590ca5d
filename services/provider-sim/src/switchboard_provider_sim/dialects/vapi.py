"""Vapi's API as the simulator plays it (`POST /call`, `GET /call/{id}`, the call's
`monitor.controlUrl`), and its server-URL messages: `{"message": {"type":
"status-update" | "end-of-call-report", "call": {<call>}, ...}}`, authenticated by the
server secret in `x-vapi-secret`."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from switchboard_provider_sim.calls import SimCall, SimStatus, iso
from switchboard_provider_sim.deps import SimulatorDep
from switchboard_provider_sim.errors import SimError
from switchboard_provider_sim.lifecycle import (
    VOICEMAIL,
    CallbackFormat,
    CreateRequest,
    analysis_for,
)
from switchboard_provider_sim.recordings import public_base, recording_url
from switchboard_shared.calls.provider_signatures import VAPI
from switchboard_shared.runtime.settings import Settings

NAME = "vapi"
SIM_ORG_ID = "00000000-0000-4000-8000-0000000a7a71"

STATUSES: dict[SimStatus, str] = {
    SimStatus.QUEUED: "queued",
    SimStatus.RINGING: "ringing",
    SimStatus.IN_PROGRESS: "in-progress",
}
# SimCall.ended_by -> Vapi's endedReason
ENDED_REASONS: dict[str, str] = {
    "customer_hangup": "customer-ended-call",
    VOICEMAIL: "voicemail",
    "error": "pipeline-error-openai-llm-failed",
    "no_answer": "customer-did-not-answer",
    "busy": "customer-busy",
    "canceled": "manually-canceled",
}


class Customer(BaseModel):
    number: str


class AssistantOverrides(BaseModel):
    model_config = ConfigDict(extra="allow")
    variableValues: dict[str, Any] = Field(default_factory=dict)


class CreateCallBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # Vapi takes many more options
    assistantId: str | None = None
    assistant: dict[str, Any] | None = None  # a transient assistant
    assistantOverrides: AssistantOverrides | None = None
    phoneNumberId: str | None = None
    customer: Customer
    name: str | None = None


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str


def render(call: SimCall) -> dict[str, Any]:
    analysis = analysis_for(call)
    url = recording_url(call)
    return {
        "id": call.id,
        "orgId": SIM_ORG_ID,
        "type": "outboundPhoneCall",
        "status": STATUSES.get(call.status, "ended"),
        "endedReason": ENDED_REASONS.get(call.ended_by or ""),
        "assistantId": call.agent_id,
        "phoneNumberId": call.from_number,
        "customer": {"number": call.to_number},
        "createdAt": iso(call.created_at),
        "startedAt": iso(call.answered_at),
        "endedAt": iso(call.ended_at),
        "transcript": call.transcript,
        "recordingUrl": url,
        "artifact": {"recordingUrl": url, "transcript": call.transcript},
        "analysis": {
            "summary": analysis["summary"],
            "structuredData": analysis["fields"],
            "successEvaluation": "true" if analysis["successful"] else "false",
        }
        if analysis
        else {},
        "monitor": {"controlUrl": f"{call.base_url.rstrip('/')}/vapi/calls/{call.id}/control"},
    }


def callback_body(call: SimCall) -> list[dict[str, Any]]:
    rendered = render(call)
    stamp = int(time.time() * 1000)
    update = {"type": "status-update", "status": rendered["status"], "call": rendered}
    if not call.status.is_final:
        return [{"message": {**update, "timestamp": stamp}}]
    update["endedReason"] = rendered["endedReason"]
    duration = call.duration or 0
    report = {
        "type": "end-of-call-report",
        "endedReason": rendered["endedReason"],
        "call": rendered,
        "recordingUrl": rendered["recordingUrl"],
        "artifact": rendered["artifact"],
        "analysis": rendered["analysis"],
        "transcript": call.transcript,
        "startedAt": rendered["startedAt"],
        "endedAt": rendered["endedAt"],
        "durationSeconds": duration,
        "timestamp": stamp,
    }
    return [{"message": {**update, "timestamp": stamp}}, {"message": report}]


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"message": message, "error": code, "statusCode": None}


def callback_format(settings: Settings, callback_base: str) -> CallbackFormat:
    default_url = f"{callback_base}/v1/webhooks/providers/{NAME}"
    return CallbackFormat(
        body=callback_body,
        # A per-call server URL (assistantOverrides.server.url) wins over the default.
        url=lambda call: call.callback_url or default_url,
        scheme=VAPI,
        secret=settings.vapi.callback_secret.get_secret_value(),
        new_id=lambda: str(uuid.uuid4()),
    )


router = APIRouter(tags=["vapi"])


@router.post("/call", status_code=201)
async def create_call(sim: SimulatorDep, body: CreateCallBody, request: Request) -> JSONResponse:
    if not body.assistantId and not body.assistant:
        raise SimError(400, "bad_request", "assistantId or assistant is required")
    overrides = body.assistantOverrides
    server = (overrides.model_extra or {}).get("server") if overrides else None
    create = CreateRequest(
        to_number=body.customer.number,
        from_number=body.phoneNumberId,
        agent_id=body.assistantId or "transient-assistant",
        variables=overrides.variableValues if overrides else {},
        callback_url=server.get("url") if isinstance(server, dict) else None,
        # Vapi has no idempotency key; the simulator honours the header all the same.
        idempotency_key=request.headers.get("idempotency-key"),
        reference=body.name,  # "for your own reference": the caller's id, if any
        base_url=public_base(request),
    )
    call, created = await sim.create(NAME, create)
    return JSONResponse(render(call), status_code=201 if created else 200)


@router.get("/call/{call_id}")
async def get_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return render(sim.get(call_id))


@router.post("/vapi/calls/{call_id}/control")
async def control(sim: SimulatorDep, call_id: str, body: ControlBody) -> dict[str, str]:
    if body.type != "end-call":
        raise SimError(400, "bad_request", f"control {body.type!r} is not simulated")
    sim.cancel(call_id)
    return {"status": "ok"}
