"""Provider adapter for Vapi (`https://api.vapi.ai`).

A call is `POST /call` with an assistant (`assistantId`, or an inline `assistant`), the
caller's `phoneNumberId` and the `customer.number`; its status (`queued`, `ringing`,
`in-progress`, `forwarding`, `ended`) says little of how it ended: `endedReason` does,
and decides our status too. Server-URL messages are `{"message": {"type": ...,
"call": {...}}}`, authenticated by the server secret in `x-vapi-secret`; the adapter
reads `status-update` and `end-of-call-report` (docs/providers.md).
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
from switchboard_shared.adapters.providers.results import analysis_of
from switchboard_shared.calls.provider_signatures import VAPI
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason as R
from switchboard_shared.domain.ended_reasons import default_reason
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderCallRequest,
    ProviderCallState,
)

LIVE_STATUSES: dict[str, CallStatus] = {
    "scheduled": CallStatus.DIALING,
    "queued": CallStatus.DIALING,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "forwarding": CallStatus.IN_PROGRESS,
}

# Vapi's endedReason -> ours. Vapi has dozens of `pipeline-error-*` and `call.*.error-*`
# codes: those go by prefix (ERROR_PREFIXES), anything unknown by the status it implies.
ENDED_REASONS: dict[str, R] = {
    "customer-ended-call": R.CUSTOMER_HANGUP,
    "assistant-ended-call": R.AGENT_HANGUP,
    "assistant-said-end-call-phrase": R.AGENT_HANGUP,
    "assistant-ended-call-with-hangup-task": R.AGENT_HANGUP,
    "assistant-ended-call-after-message-spoken": R.AGENT_HANGUP,
    "assistant-forwarded-call": R.TRANSFERRED,
    "voicemail": R.VOICEMAIL_REACHED,
    "exceeded-max-duration": R.MAX_DURATION_REACHED,
    "silence-timed-out": R.SILENCE_TIMEOUT,
    "customer-did-not-answer": R.DIAL_NO_ANSWER,
    "customer-busy": R.DIAL_BUSY,
    "twilio-failed-to-connect-call": R.DIAL_FAILED,
    "vonage-failed-to-connect-call": R.DIAL_FAILED,
    "twilio-reported-customer-misdialed": R.INVALID_NUMBER,
    "manually-canceled": R.CANCELED,
}
ERROR_PREFIXES = ("pipeline-error-", "call.in-progress.error-", "assistant-error")
DIAL_ERROR_PREFIXES = ("call.start.error-", "call.ringing.error-")

STATUS_FOR_REASON: dict[R, CallStatus] = {
    R.DIAL_NO_ANSWER: CallStatus.NO_ANSWER,
    R.DIAL_BUSY: CallStatus.BUSY,
    R.DIAL_FAILED: CallStatus.FAILED,
    R.INVALID_NUMBER: CallStatus.FAILED,
    R.PROVIDER_ERROR: CallStatus.FAILED,
    R.CANCELED: CallStatus.CANCELED,
}


def map_reason(raw: str | None) -> R | None:
    """Our reason for a Vapi `endedReason`; None when it says nothing we know."""
    if not raw:
        return None
    if raw in ENDED_REASONS:
        return ENDED_REASONS[raw]
    if raw.startswith(DIAL_ERROR_PREFIXES):
        return R.DIAL_FAILED
    if raw.startswith(ERROR_PREFIXES) or "error" in raw:
        return R.PROVIDER_ERROR
    return None


def map_status(status: Any, raw_reason: str | None) -> CallStatus:
    """Our status for a Vapi `status` (and, once `ended`, its `endedReason`)."""
    if status == "ended":
        reason = map_reason(raw_reason)
        return (
            STATUS_FOR_REASON.get(reason, CallStatus.COMPLETED) if reason else CallStatus.COMPLETED
        )
    if not isinstance(status, str) or status not in LIVE_STATUSES:
        raise MalformedCallback(f"unknown Vapi status {status!r}")
    return LIVE_STATUSES[status]


def recording_url_of(*sources: Mapping[str, Any]) -> str | None:
    """`recordingUrl`, or `artifact.recordingUrl` (newer answers), of the first that has it."""
    for source in sources:
        artifact = source.get("artifact")
        for candidate in (
            source.get("recordingUrl"),
            artifact.get("recordingUrl") if isinstance(artifact, dict) else None,
        ):
            if isinstance(candidate, str) and candidate:
                return candidate
    return None


def parse_call(
    call: Mapping[str, Any], message: Mapping[str, Any] | None = None
) -> ProviderCallState:
    """A Vapi call object (and the server message that carried it) as our state."""
    message = message or {}
    raw_reason = optional_str(message.get("endedReason") or call.get("endedReason"), "endedReason")
    status_value = message.get("status") if message.get("type") == "status-update" else None
    if message.get("type") == "end-of-call-report":
        status_value = "ended"
    status = map_status(status_value or call.get("status"), raw_reason)
    started_at = optional_datetime(message.get("startedAt") or call.get("startedAt"), "startedAt")
    ended_at = optional_datetime(message.get("endedAt") or call.get("endedAt"), "endedAt")
    duration = optional_int(message.get("durationSeconds"), "durationSeconds")
    if status.is_terminal and duration is None:
        duration = 0
        if started_at and ended_at:
            duration = max(0, round((ended_at - started_at).total_seconds()))
    analysis = message.get("analysis") or call.get("analysis") or {}
    if not isinstance(analysis, dict):
        raise MalformedCallback("analysis is not an object")
    return ProviderCallState(
        provider_call_id=required_str(call, "id"),
        status=status,
        transcript=optional_str(message.get("transcript") or call.get("transcript"), "transcript")
        or None,
        duration=duration if status.is_terminal else None,
        ended_reason=(map_reason(raw_reason) or default_reason(status))
        if status.is_terminal
        else None,
        ended_reason_raw=raw_reason if status.is_terminal else None,
        started_at=started_at,
        ended_at=ended_at,
        analysis=analysis_of(
            analysis.get("summary"),
            analysis.get("successEvaluation"),
            analysis.get("structuredData"),
        ),
        recording_available=bool(recording_url_of(message, call)) if status.is_terminal else None,
    )


class VapiProvider(HttpProvider):
    name = "vapi"
    access_probe_path = "/call/switchboard-access-probe"

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """`POST /call`. The agent's `provider_agent_id` is the assistant id. Vapi dials
        from a number registered with it, named by its `phoneNumberId`: that is the
        provider's `from_number` setting (an agent's E.164 caller id means nothing to
        Vapi and is not sent). Variables fill the assistant's `{{placeholders}}`
        (`variableValues`); the server URL of this call is ours, with our reference."""
        phone_number_id = self._from_number
        if not phone_number_id:
            raise self._http.permanent_error(
                "create_call", "needs a phoneNumberId (the provider's from_number setting)"
            )
        body = {
            "assistantId": request.provider_agent_id,
            "phoneNumberId": phone_number_id,
            "customer": {"number": request.to_number},
            "assistantOverrides": {
                "variableValues": dict(request.variables),
                "server": {"url": request.callback_url},
            },
            "name": request.call_id,  # "for your own reference": our id, in Vapi's dashboard
        }
        data = await self._http.request("create_call", "POST", "/call", json_body=body)
        return self._read("create_call", data)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        data = await self._http.request("get_call", "GET", f"/call/{provider_call_id}")
        return self._read("get_call", data)

    async def cancel_call(self, provider_call_id: str) -> None:
        """End a live call through its `monitor.controlUrl` (`{"type": "end-call"}`);
        a call that already ended is left alone, without a request."""
        data = await self._http.request("cancel_call", "GET", f"/call/{provider_call_id}")
        if not isinstance(data, dict) or data.get("status") == "ended":
            return
        monitor = data.get("monitor")
        control = monitor.get("controlUrl") if isinstance(monitor, dict) else None
        if not isinstance(control, str) or not control:
            raise self._http.permanent_error("cancel_call", "the call has no controlUrl")
        await self._http.request("cancel_call", "POST", control, json_body={"type": "end-call"})

    async def recording_url(self, provider_call_id: str) -> str | None:
        data = await self._http.request("fetch_recording", "GET", f"/call/{provider_call_id}")
        return recording_url_of(data) if isinstance(data, dict) else None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        """`status-update` and `end-of-call-report`; other message types (tool calls,
        transcripts, ...) are not ours to handle and are refused as malformed."""
        VAPI.verify(self._secret, headers, body, self._tolerance)
        message = json_object(body).get("message")
        if not isinstance(message, dict) or message.get("type") not in (
            "status-update",
            "end-of-call-report",
        ):
            raise MalformedCallback("a Vapi message needs type status-update or end-of-call-report")
        call = message.get("call")
        if not isinstance(call, dict):
            raise MalformedCallback("a Vapi message needs its `call` object")
        return parse_call(call, message)

    def _read(self, operation: str, data: Any) -> ProviderCallState:
        if not isinstance(data, dict):
            raise self._http.permanent_error(operation, "answer is not a JSON object")
        try:
            return parse_call(data)
        except MalformedCallback as exc:
            raise self._http.permanent_error(operation, str(exc)) from exc
