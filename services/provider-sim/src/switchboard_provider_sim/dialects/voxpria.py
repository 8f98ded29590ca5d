"""Voxpria's Calls API as the simulator plays it, and its designed native callbacks:
`{"event": "call.ringing"|"call.answered"|"call.ended", "timestamp", "data": {<call>}}`
signed with `X-Voxpria-Timestamp` / `X-Voxpria-Signature`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from switchboard_provider_sim.calls import SimCall, SimStatus, iso, now
from switchboard_provider_sim.deps import SimulatorDep
from switchboard_provider_sim.lifecycle import VOICEMAIL, CallbackFormat, CreateRequest
from switchboard_provider_sim.recordings import public_base, recording_url
from switchboard_shared.calls.callback_signing import VOXPRIA
from switchboard_shared.runtime.settings import Settings

NAME = "voxpria"

OUTCOMES: dict[SimStatus, str] = {
    SimStatus.COMPLETED: "successful",
    SimStatus.FAILED: "failed",
    SimStatus.NO_ANSWER: "no_answer",
    SimStatus.BUSY: "busy",
    SimStatus.CANCELED: "canceled",
}

EVENTS: dict[SimStatus, str] = {
    SimStatus.RINGING: "call.ringing",
    SimStatus.IN_PROGRESS: "call.answered",
}


class CreateCallBody(BaseModel):
    agentId: str  # Voxpria spells its fields in camelCase
    toNumber: str
    variables: dict[str, Any] = Field(default_factory=dict)


def render(call: SimCall) -> dict[str, Any]:
    # Voxpria's status names are the simulator's own.
    return {
        "callId": call.id,
        "status": call.status.value,
        "toNumber": call.to_number,
        "agentId": call.agent_id,
        "duration": call.duration,
        "recording": recording_url(call),
        "transcript": call.transcript,
        "outcome": "voicemail" if call.ended_by == VOICEMAIL else OUTCOMES.get(call.status),
        "createdAt": iso(call.created_at),
        "startedAt": iso(call.answered_at),
        "completedAt": iso(call.ended_at),
    }


def envelope(call: SimCall) -> dict[str, Any]:
    return {"success": True, "data": render(call)}


def callback_body(call: SimCall) -> dict[str, Any] | None:
    return {
        "event": EVENTS.get(call.status, "call.ended"),
        "timestamp": iso(now()),
        "data": render(call),
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def callback_format(settings: Settings, callback_base: str) -> CallbackFormat:
    url = f"{callback_base}/v1/webhooks/providers/{NAME}"
    return CallbackFormat(
        body=callback_body,
        url=lambda call: url,
        scheme=VOXPRIA,
        secret=settings.voxpria.callback_secret.get_secret_value(),
        new_id=lambda: f"call_{uuid.uuid4().hex}",
    )


router = APIRouter(tags=["voxpria"])


@router.post("/api/v1/calls", status_code=201)
async def create_call(
    sim: SimulatorDep,
    body: CreateCallBody,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    create = CreateRequest(
        to_number=body.toNumber,
        from_number=None,
        agent_id=body.agentId,
        variables=body.variables,
        callback_url=None,
        idempotency_key=idempotency_key,
        base_url=public_base(request),
    )
    call, created = await sim.create(NAME, create)
    return JSONResponse(envelope(call), status_code=201 if created else 200)


@router.get("/api/v1/calls/{call_id}")
async def get_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return envelope(sim.get(call_id))


@router.post("/api/v1/calls/{call_id}/cancel")
async def cancel_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return envelope(sim.cancel(call_id))
