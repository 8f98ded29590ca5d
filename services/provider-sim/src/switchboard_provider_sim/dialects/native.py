"""The simulator's native API (`/v1/calls`); it calls back in the generic normalized
format of the design, signed with the Switchboard scheme, to the `callback_url` given
at create exactly as given (query string included)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from switchboard_provider_sim.calls import SimCall, SimStatus, iso
from switchboard_provider_sim.lifecycle import CallbackFormat, CreateRequest, Simulator
from switchboard_shared.callback_signing import SWITCHBOARD
from switchboard_shared.settings import Settings

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
        "ended_reason": call.ended_reason,
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
        "ended_reason": call.ended_reason,
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


def router(sim: Simulator) -> APIRouter:
    routes = APIRouter(tags=["simulator"])

    @routes.post("/v1/calls", status_code=201)
    async def create_call(
        body: CreateCallBody,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        request = CreateRequest(
            to_number=body.to_number,
            from_number=body.from_number,
            agent_id=body.agent_id,
            variables=body.variables,
            callback_url=body.callback_url,
            idempotency_key=idempotency_key or body.reference,
            reference=body.reference,
        )
        call, created = sim.create(NAME, request)
        return JSONResponse(render(call), status_code=201 if created else 200)

    # Declared before `/v1/calls/{call_id}` so that it wins; not `GET /v1/calls?...`,
    # which the Vocode dialect's get (`?id=`) holds on this shared server.
    @routes.get("/v1/calls/search")
    async def find_calls(
        reference: Annotated[str, Query(min_length=1)],
    ) -> dict[str, list[dict[str, Any]]]:
        """The calls created with `reference` (body) or that `Idempotency-Key`, oldest
        first; `{"data": []}` when there are none."""
        return {"data": [render(call) for call in sim.find(NAME, reference)]}

    @routes.get("/v1/calls/{call_id}")
    async def get_call(call_id: str) -> dict[str, Any]:
        return render(sim.get(call_id))

    @routes.post("/v1/calls/{call_id}/cancel")
    async def cancel_call(call_id: str) -> dict[str, Any]:
        return render(sim.cancel(call_id))

    return routes
