"""Provider adapter for Vocode's hosted API (`https://api.vocode.dev`).

Vocode's call object has four statuses (not_started, in_progress, error, ended). The
adapter refines them with `telephony_status` when the provider sends it (ringing, busy,
no-answer, canceled), so busy and unanswered calls are not all reported as `failed`.
Vocode says nothing of who hung up, of voicemail or of an analysis: its calls end
`completed` (ended_reason) with `outcome` and `analysis` null. Callbacks are
`{"type": "event_phone_call_...", "call": {<call object>}}` signed with
`X-Vocode-Timestamp` / `X-Vocode-Signature` (docs/providers.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard_shared.adapters.providers.http import (
    HttpProvider,
    json_object,
    optional_datetime,
    optional_str,
    required_str,
)
from switchboard_shared.adapters.providers.results import ended_reason
from switchboard_shared.calls.callback_signing import VOCODE
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderCallRequest,
    ProviderCallState,
    RecordingNotFound,
    RecordingStream,
)

STATUS_MAP: dict[str, CallStatus] = {
    "not_started": CallStatus.DIALING,
    "in_progress": CallStatus.IN_PROGRESS,
    "ended": CallStatus.COMPLETED,
    "error": CallStatus.FAILED,
}

# (status, telephony_status) pairs that say more than the status alone.
REFINED_STATUS: dict[tuple[str, str], CallStatus] = {
    ("not_started", "ringing"): CallStatus.RINGING,
    ("error", "busy"): CallStatus.BUSY,
    ("error", "no-answer"): CallStatus.NO_ANSWER,
    ("ended", "canceled"): CallStatus.CANCELED,
}

# Raw code (`telephony_status`, else `status`) -> our reason; the rest follow the status.
ENDED_REASONS: dict[str, EndedReason] = {
    "completed": EndedReason.COMPLETED,
    "busy": EndedReason.DIAL_BUSY,
    "no-answer": EndedReason.DIAL_NO_ANSWER,
    "canceled": EndedReason.CANCELED,
    "failed": EndedReason.PROVIDER_ERROR,
}


def map_status(status: Any, telephony_status: Any = None) -> CallStatus:
    """Our status for a Vocode call's `status` and optional `telephony_status`."""
    if not isinstance(status, str) or status not in STATUS_MAP:
        raise MalformedCallback(f"unknown Vocode status {status!r}")
    if isinstance(telephony_status, str):
        refined = REFINED_STATUS.get((status, telephony_status))
        if refined is not None:
            return refined
    return STATUS_MAP[status]


def parse_call(call: Mapping[str, Any]) -> ProviderCallState:
    """A Vocode call object as our state (MalformedCallback when it cannot be read)."""
    status = map_status(call.get("status"), call.get("telephony_status"))
    started_at = optional_datetime(call.get("started_at"), "started_at")
    ended_at = optional_datetime(call.get("ended_at"), "ended_at")
    duration = None
    if status.is_terminal:
        # Vocode reports no duration: it is the time between answer and hang-up.
        duration = 0
        if started_at and ended_at:
            duration = max(0, round((ended_at - started_at).total_seconds()))
    telephony = optional_str(call.get("telephony_status"), "telephony_status")
    raw = (telephony or call.get("status")) if status.is_terminal else None
    reason = ended_reason(status, raw, ENDED_REASONS)
    if status is CallStatus.FAILED and started_at is None:
        reason = EndedReason.DIAL_FAILED  # an error before anyone answered
    recording = call.get("recording_available")
    return ProviderCallState(
        provider_call_id=required_str(call, "id"),
        status=status,
        transcript=optional_str(call.get("transcript"), "transcript") or None,
        duration=duration,
        ended_reason=reason,
        ended_reason_raw=raw,
        started_at=started_at,
        ended_at=ended_at,
        recording_available=recording
        if isinstance(recording, bool) and status.is_terminal
        else None,
    )


def _inline_agent(request: ProviderCallRequest) -> dict[str, Any]:
    """Vocode's agent object, for a route that names no Vocode agent: our prompt, voice
    and initial message (placeholders already filled)."""
    spec = request.agent
    if spec is None:
        return {}
    agent: dict[str, Any] = {"prompt": spec.prompt or "", "language": spec.language}
    if spec.initial_message:
        agent["initial_message"] = spec.initial_message
    if spec.voice:
        agent["voice"] = {"type": "voice_base", "voice_name": spec.voice}
    return agent


class VocodeProvider(HttpProvider):
    name = "vocode"
    access_probe_path = "/v1/calls?id=switchboard-access-probe"
    inline_agent = True  # Vocode's create takes an agent object

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """`POST /v1/calls/create`. Vocode needs a from number: the agent's, else the
        provider's `from_number` setting. Variables have no place in Vocode's create
        call (they belong in the agent's prompt) and are not sent."""
        from_number = request.from_number or self._from_number
        if not from_number:
            raise self._http.permanent_error(
                "create_call", "needs a from_number (the agent's or the provider setting)"
            )
        body = {
            "from_number": from_number,
            "to_number": request.to_number,
            "agent": request.provider_agent_id or _inline_agent(request),
        }
        data = await self._http.request(
            "create_call",
            "POST",
            "/v1/calls/create",
            json_body=body,
            headers={"Idempotency-Key": request.call_id},
        )
        return self._read("create_call", data)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        data = await self._http.request(
            "get_call", "GET", "/v1/calls", params={"id": provider_call_id}
        )
        return self._read("get_call", data)

    async def cancel_call(self, provider_call_id: str) -> None:
        """`POST /v1/calls/end`; ending a call that already ended is a no-op."""
        await self._http.request(
            "cancel_call", "POST", "/v1/calls/end", json_body={"id": provider_call_id}
        )

    async def fetch_recording(
        self, provider_call_id: str, byte_range: str | None = None
    ) -> RecordingStream:
        """`GET /v1/calls/recording?id=` once the call says `recording_available`."""
        state = await self.get_call(provider_call_id)
        if not state.recording_available:
            raise RecordingNotFound("vocode reports no recording for the call")
        return await self._http.open_audio(f"/v1/calls/recording?id={provider_call_id}", byte_range)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        VOCODE.verify(self._secret, headers, body, self._tolerance)
        payload = json_object(body)
        call = payload.get("call")
        if not isinstance(payload.get("type"), str) or not isinstance(call, dict):
            raise MalformedCallback("a Vocode callback needs `type` and a `call` object")
        return parse_call(call)

    def _read(self, operation: str, data: Any) -> ProviderCallState:
        if not isinstance(data, dict):
            raise self._http.permanent_error(operation, "answer is not a JSON object")
        try:
            return parse_call(data)
        except MalformedCallback as exc:
            raise self._http.permanent_error(operation, str(exc)) from exc
