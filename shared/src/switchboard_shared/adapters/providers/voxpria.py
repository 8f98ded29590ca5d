"""Provider adapter for Voxpria's Calls API (`https://app.voxpria.com/api/v1`).

Answers are wrapped as `{"success": true, "data": {...}}` with camelCase fields.
Callbacks are `{"event": "call.<...>", "timestamp": ..., "data": {<call>}}` signed with
`X-Voxpria-Timestamp` / `X-Voxpria-Signature` (docs/providers.md).
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
from switchboard_shared.adapters.providers.results import ended_reason, outcome_label
from switchboard_shared.calls.callback_signing import VOXPRIA
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderCallRequest,
    ProviderCallState,
)

# Voxpria's documented statuses, plus `canceled` for a call ended through the API.
STATUS_MAP: dict[str, CallStatus] = {
    "queued": CallStatus.DIALING,
    "ringing": CallStatus.RINGING,
    "in_progress": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "failed": CallStatus.FAILED,
    "no_answer": CallStatus.NO_ANSWER,
    "busy": CallStatus.BUSY,
    "canceled": CallStatus.CANCELED,
}

# Voxpria says why through its `outcome` (its status says the rest): the raw code.
ENDED_REASONS: dict[str, EndedReason] = {
    "voicemail": EndedReason.VOICEMAIL_REACHED,
    "no_answer": EndedReason.DIAL_NO_ANSWER,
    "busy": EndedReason.DIAL_BUSY,
    "failed": EndedReason.PROVIDER_ERROR,
    "canceled": EndedReason.CANCELED,
}


def map_status(status: Any) -> CallStatus:
    """Our status for a Voxpria status; MalformedCallback when unknown."""
    if not isinstance(status, str) or status not in STATUS_MAP:
        raise MalformedCallback(f"unknown Voxpria status {status!r}")
    return STATUS_MAP[status]


def parse_call(data: Mapping[str, Any]) -> ProviderCallState:
    """A Voxpria call (`data` of an answer or a callback) as our state."""
    status = map_status(data.get("status"))
    duration = optional_int(data.get("duration"), "duration")
    if status.is_terminal and duration is None:
        duration = 0
    outcome = outcome_label(data.get("outcome"))
    recording = optional_str(data.get("recording"), "recording")
    return ProviderCallState(
        provider_call_id=required_str(data, "callId"),
        status=status,
        transcript=optional_str(data.get("transcript"), "transcript") or None,
        duration=duration,
        ended_reason=ended_reason(status, outcome, ENDED_REASONS),
        ended_reason_raw=outcome if status.is_terminal else None,
        started_at=optional_datetime(data.get("startedAt"), "startedAt"),
        ended_at=optional_datetime(data.get("completedAt"), "completedAt"),
        outcome=outcome,
        recording_available=bool(recording) if status.is_terminal else None,
    )


class VoxpriaProvider(HttpProvider):
    name = "voxpria"
    access_probe_path = "/api/v1/calls/switchboard-access-probe"

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """`POST /api/v1/calls`. Voxpria dials from the agent's own number and sends
        callbacks to the URL configured in its dashboard, so neither is sent."""
        body = {
            "agentId": request.provider_agent_id,
            "toNumber": request.to_number,
            "variables": dict(request.variables),
        }
        data = await self._http.request(
            "create_call",
            "POST",
            "/api/v1/calls",
            json_body=body,
            headers={"Idempotency-Key": request.call_id},
        )
        return self._read("create_call", data)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        data = await self._http.request("get_call", "GET", f"/api/v1/calls/{provider_call_id}")
        return self._read("get_call", data)

    async def cancel_call(self, provider_call_id: str) -> None:
        """`POST /api/v1/calls/{id}/cancel`; cancelling an ended call is a no-op."""
        await self._http.request("cancel_call", "POST", f"/api/v1/calls/{provider_call_id}/cancel")

    async def recording_url(self, provider_call_id: str) -> str | None:
        """The call's `recording` URL."""
        answer = await self._http.request(
            "fetch_recording", "GET", f"/api/v1/calls/{provider_call_id}"
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        url = data.get("recording") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        VOXPRIA.verify(self._secret, headers, body, self._tolerance)
        payload = json_object(body)
        data = payload.get("data")
        if not isinstance(payload.get("event"), str) or not isinstance(data, dict):
            raise MalformedCallback("a Voxpria callback needs `event` and a `data` object")
        return parse_call(data)

    def _read(self, operation: str, answer: Any) -> ProviderCallState:
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or answer.get("success") is not True:
            raise self._http.permanent_error(operation, "answer is not a successful envelope")
        try:
            return parse_call(data)
        except MalformedCallback as exc:
            raise self._http.permanent_error(operation, str(exc)) from exc
