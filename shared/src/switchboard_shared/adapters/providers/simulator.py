"""Provider adapter for the built-in simulator's native API.

Its callbacks are the generic normalized format of the design, signed with the
Switchboard scheme, so `parse_callback` here is also the parser of the generic
`/v1/webhooks/call-completed` endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard_shared.adapters.providers.http import (
    HttpProvider,
    json_object,
    optional_datetime,
    optional_int,
    optional_str,
    required_str,
)
from switchboard_shared.adapters.providers.results import analysis_of, outcome_label
from switchboard_shared.calls import callback_signing
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import default_reason, read_reason
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderCallRequest,
    ProviderCallState,
)

# The simulator's statuses (also the `status` of the generic callback) -> ours.
# A provider's "queued" means it accepted the call and is dialing: our `dialing`.
STATUS_MAP: dict[str, CallStatus] = {
    "queued": CallStatus.DIALING,
    "dialing": CallStatus.DIALING,
    "ringing": CallStatus.RINGING,
    "in_progress": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "failed": CallStatus.FAILED,
    "no_answer": CallStatus.NO_ANSWER,
    "busy": CallStatus.BUSY,
    "canceled": CallStatus.CANCELED,
}

# When a generic callback carries no `status`, its event type says it.
EVENT_STATUS: dict[str, CallStatus] = {
    "call.ringing": CallStatus.RINGING,
    "call.in_progress": CallStatus.IN_PROGRESS,
    "call.completed": CallStatus.COMPLETED,
}


def map_status(native: Any) -> CallStatus:
    """Our status for a simulator/generic status; MalformedCallback when unknown."""
    if not isinstance(native, str) or native not in STATUS_MAP:
        raise MalformedCallback(f"unknown status {native!r}")
    return STATUS_MAP[native]


def parse_call(data: Mapping[str, Any], id_field: str) -> ProviderCallState:
    """A simulator call object or generic callback as our state (MalformedCallback)."""
    if "status" in data:
        status = map_status(data["status"])
    else:
        event_type = data.get("event_type")
        if event_type not in EVENT_STATUS:
            raise MalformedCallback("neither status nor a known event_type")
        status = EVENT_STATUS[event_type]
    raw_reason = optional_str(data.get("ended_reason"), "ended_reason")
    analysis = data.get("analysis")
    if analysis is not None and not isinstance(analysis, dict):
        raise MalformedCallback("analysis is not an object")
    recording = data.get("recording_available")
    if recording is not None and not isinstance(recording, bool):
        raise MalformedCallback("recording_available is not a boolean")
    return ProviderCallState(
        provider_call_id=required_str(data, id_field),
        status=status,
        transcript=optional_str(data.get("transcript"), "transcript"),
        duration=optional_int(data.get("duration"), "duration"),
        # The generic format speaks our taxonomy (older names still read).
        ended_reason=(read_reason(raw_reason) or default_reason(status))
        if status.is_terminal
        else None,
        ended_reason_raw=raw_reason,
        started_at=optional_datetime(data.get("started_at"), "started_at"),
        ended_at=optional_datetime(data.get("ended_at"), "ended_at"),
        outcome=outcome_label(data.get("outcome")),
        analysis=analysis_of(
            analysis.get("summary"), analysis.get("successful"), analysis.get("fields")
        )
        if analysis
        else None,
        recording_available=recording if status.is_terminal else None,
    )


class SimulatorProvider(HttpProvider):
    """The simulator's native dialect: `/v1/calls` with our own statuses."""

    name = "simulator"
    access_probe_path = "/v1/calls/switchboard-access-probe"

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """Place the call; `reference` and `Idempotency-Key` carry our call id so a retried
        create returns the same provider call instead of dialing twice."""
        body = {
            "to_number": request.to_number,
            "from_number": request.from_number or self._from_number,
            "agent_id": request.provider_agent_id,
            "variables": dict(request.variables),
            "callback_url": request.callback_url,
            "reference": request.call_id,
        }
        data = await self._http.request(
            "create_call",
            "POST",
            "/v1/calls",
            json_body=body,
            headers={"Idempotency-Key": request.call_id},
        )
        return self._read("create_call", data)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        data = await self._http.request("get_call", "GET", f"/v1/calls/{provider_call_id}")
        return self._read("get_call", data)

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        """`GET /v1/calls/search?reference=<call_id>`: the call created with our call id
        as its reference/idempotency key (the newest, should there be several), None
        when the simulator has none. A 404 is not "none": it means the lookup itself is
        missing, and raises ProviderPermanentError like any other 4xx."""
        answer = await self._http.request(
            "find_call", "GET", "/v1/calls/search", params={"reference": call_id}
        )
        found = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(found, list):
            raise self._http.permanent_error("find_call", "answer has no `data` list")
        if not found:
            return None
        return self._read("find_call", found[-1])

    async def cancel_call(self, provider_call_id: str) -> None:
        """Hang up or cancel; cancelling a call that already ended is a no-op."""
        await self._http.request("cancel_call", "POST", f"/v1/calls/{provider_call_id}/cancel")

    async def recording_url(self, provider_call_id: str) -> str | None:
        """`recording_url` of the call object (`/v1/calls/{id}/recording`)."""
        data = await self._http.request("fetch_recording", "GET", f"/v1/calls/{provider_call_id}")
        url = data.get("recording_url") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        callback_signing.verify(self._secret, headers, body, self._tolerance)
        return parse_call(json_object(body), "provider_call_id")

    def _read(self, operation: str, data: Any) -> ProviderCallState:
        if not isinstance(data, dict):
            raise self._http.permanent_error(operation, "answer is not a JSON object")
        try:
            return parse_call(data, "id")
        except MalformedCallback as exc:
            raise self._http.permanent_error(operation, str(exc)) from exc
