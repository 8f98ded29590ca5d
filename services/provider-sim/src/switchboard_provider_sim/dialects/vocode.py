"""Vocode's hosted API as the simulator plays it, and its designed native callbacks:
`{"type": "event_phone_call_...", "event_id", "created_at", "call": {<call object>}}`
signed with `X-Vocode-Timestamp` / `X-Vocode-Signature`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from switchboard_provider_sim.calls import SimCall, SimStatus, iso, now
from switchboard_provider_sim.deps import SimulatorDep
from switchboard_provider_sim.lifecycle import CallbackFormat, CreateRequest
from switchboard_provider_sim.recordings import public_base, recording_response
from switchboard_shared.calls.callback_signing import VOCODE
from switchboard_shared.runtime.settings import Settings

NAME = "vocode"
SIM_USER_ID = "00000000-0000-4000-8000-00000000c0de"

# Our status -> Vocode's `status` and the `telephony_status` the simulator adds.
STATUSES: dict[SimStatus, tuple[str, str]] = {
    SimStatus.QUEUED: ("not_started", "queued"),
    SimStatus.RINGING: ("not_started", "ringing"),
    SimStatus.IN_PROGRESS: ("in_progress", "in-progress"),
    SimStatus.COMPLETED: ("ended", "completed"),
    SimStatus.CANCELED: ("ended", "canceled"),
    SimStatus.FAILED: ("error", "failed"),
    SimStatus.NO_ANSWER: ("error", "no-answer"),
    SimStatus.BUSY: ("error", "busy"),
}

ERROR_MESSAGES: dict[SimStatus, str] = {
    SimStatus.FAILED: "call dropped: simulated provider error",
    SimStatus.NO_ANSWER: "the callee did not answer",
    SimStatus.BUSY: "the line was busy",
}


class InlineAgent(BaseModel):
    """Vocode's agent object, sent instead of an agent id."""

    model_config = ConfigDict(extra="allow")

    prompt: str
    initial_message: str | None = None


class CreateCallBody(BaseModel):
    from_number: str
    to_number: str
    agent: str | InlineAgent


class EndCallBody(BaseModel):
    id: str


def render(call: SimCall) -> dict[str, Any]:
    status, telephony_status = STATUSES[call.status]
    return {
        "id": call.id,
        "user_id": SIM_USER_ID,
        "status": status,
        "error_message": ERROR_MESSAGES.get(call.status),
        "recording_available": call.recording,
        "transcript": call.transcript,
        "to_number": call.to_number,
        "from_number": call.from_number,
        "agent": {
            "id": call.agent_id,
            "user_id": SIM_USER_ID,
            "prompt": (call.inline_agent or {}).get("prompt", ""),
            "actions": [],
            "initial_message": (call.inline_agent or {}).get("initial_message") or "",
        },
        "telephony_status": telephony_status,
        "started_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
    }


def event_type(call: SimCall) -> str | None:
    """Vocode has no ringing event; a call that never connected has its own."""
    if call.status is SimStatus.IN_PROGRESS:
        return "event_phone_call_connected"
    if call.status in (SimStatus.BUSY, SimStatus.NO_ANSWER) or (
        call.status is SimStatus.FAILED and call.answered_at is None
    ):
        return "event_phone_call_did_not_connect"
    if call.status.is_final:
        return "event_phone_call_ended"
    return None


def callback_body(call: SimCall) -> dict[str, Any] | None:
    kind = event_type(call)
    if kind is None:
        return None
    return {
        "type": kind,
        "event_id": str(uuid.uuid4()),
        "created_at": iso(now()),
        "call": render(call),
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"detail": message, "code": code}


def callback_format(settings: Settings, callback_base: str) -> CallbackFormat:
    url = f"{callback_base}/v1/webhooks/providers/{NAME}"
    return CallbackFormat(
        body=callback_body,
        url=lambda call: url,
        scheme=VOCODE,
        secret=settings.vocode.callback_secret.get_secret_value(),
        new_id=lambda: str(uuid.uuid4()),
    )


router = APIRouter(tags=["vocode"])


@router.post("/v1/calls/create")
async def create_call(
    sim: SimulatorDep,
    body: CreateCallBody,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    create = CreateRequest(
        to_number=body.to_number,
        from_number=body.from_number,
        agent_id=body.agent if isinstance(body.agent, str) else "inline",
        inline_agent=None if isinstance(body.agent, str) else body.agent.model_dump(),
        variables={},
        callback_url=None,
        idempotency_key=idempotency_key,
        base_url=public_base(request),
    )
    call, _ = await sim.create(NAME, create)
    return render(call)


# The audio of a call whose `recording_available` is true. (This router is included
# before the native one, whose `/v1/calls/{call_id}` would take this path otherwise.)
@router.get("/v1/calls/recording")
async def get_recording(
    sim: SimulatorDep,
    call_id: Annotated[str, Query(alias="id")],
    range: Annotated[str | None, Header()] = None,
) -> Response:
    return recording_response(sim.get(call_id), range)


@router.get("/v1/calls")
async def get_call(sim: SimulatorDep, call_id: Annotated[str, Query(alias="id")]) -> dict[str, Any]:
    return render(sim.get(call_id))


@router.post("/v1/calls/end")
async def end_call(sim: SimulatorDep, body: EndCallBody) -> dict[str, Any]:
    return render(sim.cancel(body.id))
