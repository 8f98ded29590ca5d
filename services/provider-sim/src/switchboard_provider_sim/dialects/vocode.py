"""Vocode's hosted API as the simulator plays it, and its designed native callbacks:
`{"type": "event_phone_call_...", "event_id", "created_at", "call": {<call object>}}`
signed with `X-Vocode-Timestamp` / `X-Vocode-Signature`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel

from switchboard_provider_sim.calls import SimCall, SimStatus, iso, now
from switchboard_provider_sim.lifecycle import CallbackFormat, CreateRequest, Simulator
from switchboard_shared.callback_signing import VOCODE
from switchboard_shared.settings import Settings

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


class CreateCallBody(BaseModel):
    from_number: str
    to_number: str
    agent: str


class EndCallBody(BaseModel):
    id: str


def render(call: SimCall) -> dict[str, Any]:
    status, telephony_status = STATUSES[call.status]
    return {
        "id": call.id,
        "user_id": SIM_USER_ID,
        "status": status,
        "error_message": ERROR_MESSAGES.get(call.status),
        "recording_available": False,
        "transcript": call.transcript,
        "to_number": call.to_number,
        "from_number": call.from_number,
        "agent": {
            "id": call.agent_id,
            "user_id": SIM_USER_ID,
            "prompt": "",
            "actions": [],
            "initial_message": "",
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


def router(sim: Simulator) -> APIRouter:
    routes = APIRouter(tags=["vocode"])

    @routes.post("/v1/calls/create")
    async def create_call(
        body: CreateCallBody,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        request = CreateRequest(
            to_number=body.to_number,
            from_number=body.from_number,
            agent_id=body.agent,
            variables={},
            callback_url=None,
            idempotency_key=idempotency_key,
        )
        call, _ = sim.create(NAME, request)
        return render(call)

    @routes.get("/v1/calls")
    async def get_call(call_id: Annotated[str, Query(alias="id")]) -> dict[str, Any]:
        return render(sim.get(call_id))

    @routes.post("/v1/calls/end")
    async def end_call(body: EndCallBody) -> dict[str, Any]:
        return render(sim.cancel(body.id))

    return routes
