"""The simulator's native API (`/v1/calls`); it calls back in the generic normalized
format of the design, signed with the Switchboard scheme, to the `callback_url` given
at create exactly as given (query string included)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from switchboard_provider_sim.calls import SimCall, SimStatus, iso
from switchboard_provider_sim.deps import SimulatorDep
from switchboard_provider_sim.lifecycle import (
    VOICEMAIL,
    CallbackFormat,
    CreateRequest,
    analysis_for,
)
from switchboard_provider_sim.recordings import public_base, recording_response, recording_url
from switchboard_shared.calls.callback_signing import SWITCHBOARD
from switchboard_shared.runtime.settings import Settings

NAME = "simulator"

EVENT_TYPES: dict[SimStatus, str] = {
    SimStatus.RINGING: "call.ringing",
    SimStatus.IN_PROGRESS: "call.in_progress",
}


class CreateCallBody(BaseModel):
    to_number: str
    from_number: str | None = None
    agent_id: str
    variables: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = None
    reference: str | None = None  # the caller's id for the call; also an idempotency key


# The native dialect speaks the generic callback format: its reasons are ours.
ENDED_REASONS: dict[str, str] = {
    "customer_hangup": "customer_hangup",
    VOICEMAIL: "voicemail_reached",
    "error": "provider_error",
    "no_answer": "dial_no_answer",
    "busy": "dial_busy",
    "canceled": "canceled",
}


def _results(call: SimCall) -> dict[str, Any]:
    analysis = analysis_for(call)
    return {
        "ended_reason": ENDED_REASONS.get(call.ended_by or ""),
        "outcome": "successful" if analysis else None,
        "analysis": analysis,
        "recording_available": call.recording,
    }


def render(call: SimCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "status": call.status.value,
        "to_number": call.to_number,
        "from_number": call.from_number,
        "agent_id": call.agent_id,
        "reference": call.reference,
        "transcript": call.transcript,
        "duration": call.duration,
        **_results(call),
        "recording_url": recording_url(call),
        "created_at": iso(call.created_at),
        "started_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
    }


def callback_body(call: SimCall) -> dict[str, Any] | None:
    return {
        "event_type": EVENT_TYPES.get(call.status, "call.completed"),
        "provider_call_id": call.id,
        "status": call.status.value,
        "transcript": call.transcript,
        "duration": call.duration,
        **_results(call),
        "started_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def callback_format(settings: Settings, callback_base: str) -> CallbackFormat:
    return CallbackFormat(
        body=callback_body,
        # Callers normally pass callback_url; without it, the generic ingest endpoint.
        url=lambda call: call.callback_url or f"{callback_base}/v1/webhooks/call-completed",
        scheme=SWITCHBOARD,
        secret=settings.simulator.callback_secret.get_secret_value(),
        new_id=lambda: f"sim_{uuid.uuid4().hex}",
    )


router = APIRouter(tags=["simulator"])


@router.post("/v1/calls", status_code=201)
async def create_call(
    sim: SimulatorDep,
    body: CreateCallBody,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    create = CreateRequest(
        to_number=body.to_number,
        from_number=body.from_number,
        agent_id=body.agent_id,
        variables=body.variables,
        callback_url=body.callback_url,
        idempotency_key=idempotency_key or body.reference,
        reference=body.reference,
        base_url=public_base(request),
    )
    call, created = await sim.create(NAME, create)
    return JSONResponse(render(call), status_code=201 if created else 200)


# Declared before `/v1/calls/{call_id}` so that it wins; not `GET /v1/calls?...`,
# which the Vocode dialect's get (`?id=`) holds on this shared server.
@router.get("/v1/calls/search")
async def find_calls(
    sim: SimulatorDep,
    reference: Annotated[str, Query(min_length=1)],
) -> dict[str, list[dict[str, Any]]]:
    """The calls created with `reference` (body) or that `Idempotency-Key`, oldest
    first; `{"data": []}` when there are none."""
    return {"data": [render(call) for call in sim.find(NAME, reference)]}


@router.get("/v1/calls/{call_id}")
async def get_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return render(sim.get(call_id))


@router.get("/v1/calls/{call_id}/recording")
async def get_recording(
    sim: SimulatorDep, call_id: str, range: Annotated[str | None, Header()] = None
) -> Response:
    return recording_response(sim.get(call_id), range)


@router.post("/v1/calls/{call_id}/cancel")
async def cancel_call(sim: SimulatorDep, call_id: str) -> dict[str, Any]:
    return render(sim.cancel(call_id))
