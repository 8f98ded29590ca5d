"""Provider adapter for Retell AI (`https://api.retellai.com`).

A call is `POST /v2/create-phone-call` (`from_number`, `to_number`,
`override_agent_id`, `metadata`, `retell_llm_dynamic_variables`) and is read with
`GET /v2/get-call/{call_id}`. `call_status` is `registered`, `ongoing`, `ended`,
`not_connected` or `error`; `disconnection_reason` says how it ended. Webhooks are
`{"event": "call_started" | "call_ended" | "call_analyzed", "call": {...}}` signed in
`x-retell-signature` with the API key; the analysis comes in `call_analyzed`, after
the end (docs/providers.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard_shared.adapters.providers.http import (
    HttpProvider,
    json_object,
    optional_int,
    optional_str,
    required_str,
)
from switchboard_shared.adapters.providers.results import analysis_of
from switchboard_shared.calls.provider_signatures import RETELL
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason as R
from switchboard_shared.domain.ended_reasons import default_reason
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderCallRequest,
    ProviderCallState,
    ProviderPermanentError,
)
from switchboard_shared.runtime.settings import ProviderSettings

LIVE_STATUSES: dict[str, CallStatus] = {
    "registered": CallStatus.DIALING,
    "ongoing": CallStatus.IN_PROGRESS,
}

# Retell's disconnection_reason -> ours (its "Debug call disconnection" table).
ENDED_REASONS: dict[str, R] = {
    "user_hangup": R.CUSTOMER_HANGUP,
    "agent_hangup": R.AGENT_HANGUP,
    "ivr_reached": R.AGENT_HANGUP,  # the agent hangs up on an IVR, as configured
    "call_transfer": R.TRANSFERRED,
    "voicemail_reached": R.VOICEMAIL_REACHED,
    "inactivity": R.SILENCE_TIMEOUT,
    "max_duration_reached": R.MAX_DURATION_REACHED,
    "dial_busy": R.DIAL_BUSY,
    "user_declined": R.DIAL_BUSY,
    "dial_no_answer": R.DIAL_NO_ANSWER,
    "dial_failed": R.DIAL_FAILED,
    "invalid_destination": R.INVALID_NUMBER,
    "telephony_provider_permission_denied": R.DIAL_FAILED,
    "telephony_provider_unavailable": R.DIAL_FAILED,
    "sip_routing_error": R.DIAL_FAILED,
    "marked_as_spam": R.DIAL_FAILED,
    "concurrency_limit_reached": R.PROVIDER_REJECTED,
    "no_valid_payment": R.PROVIDER_REJECTED,
    "scam_detected": R.AGENT_HANGUP,
}

# A call that never connected: its reason says which of our statuses it is.
NOT_CONNECTED: dict[R, CallStatus] = {
    R.DIAL_BUSY: CallStatus.BUSY,
    R.DIAL_NO_ANSWER: CallStatus.NO_ANSWER,
}


def map_reason(raw: str | None) -> R | None:
    if not raw:
        return None
    if raw in ENDED_REASONS:
        return ENDED_REASONS[raw]
    return R.PROVIDER_ERROR if raw.startswith("error") else None


def map_status(call_status: Any, raw_reason: str | None) -> CallStatus:
    """Our status for a Retell `call_status` and `disconnection_reason`."""
    if call_status in LIVE_STATUSES:
        return LIVE_STATUSES[call_status]
    reason = map_reason(raw_reason)
    if call_status == "ended":
        return CallStatus.FAILED if reason is R.PROVIDER_ERROR else CallStatus.COMPLETED
    if call_status == "not_connected":
        return NOT_CONNECTED.get(reason, CallStatus.FAILED) if reason else CallStatus.FAILED
    if call_status == "error":
        return CallStatus.FAILED
    raise MalformedCallback(f"unknown Retell call_status {call_status!r}")


def _moment(value: Any, field: str) -> datetime | None:
    millis = optional_int(value, field)
    return datetime.fromtimestamp(millis / 1000, UTC) if millis is not None else None


def parse_call(call: Mapping[str, Any]) -> ProviderCallState:
    """A Retell call object (of an answer or a webhook) as our state."""
    raw_reason = optional_str(call.get("disconnection_reason"), "disconnection_reason")
    status = map_status(call.get("call_status"), raw_reason)
    terminal = status.is_terminal
    duration_ms = optional_int(call.get("duration_ms"), "duration_ms")
    analysis = call.get("call_analysis")
    if analysis is not None and not isinstance(analysis, dict):
        raise MalformedCallback("call_analysis is not an object")
    reason = (map_reason(raw_reason) or default_reason(status)) if terminal else None
    if analysis and analysis.get("in_voicemail") is True and terminal:
        reason = R.VOICEMAIL_REACHED
    recording = optional_str(call.get("recording_url"), "recording_url")
    return ProviderCallState(
        provider_call_id=required_str(call, "call_id"),
        status=status,
        transcript=optional_str(call.get("transcript"), "transcript") or None,
        duration=(round(duration_ms / 1000) if duration_ms is not None else 0)
        if terminal
        else None,
        ended_reason=reason,
        ended_reason_raw=raw_reason if terminal else None,
        started_at=_moment(call.get("start_timestamp"), "start_timestamp"),
        ended_at=_moment(call.get("end_timestamp"), "end_timestamp"),
        analysis=analysis_of(
            analysis.get("call_summary"),
            analysis.get("call_successful"),
            analysis.get("custom_analysis_data"),
        )
        if analysis
        else None,
        recording_available=bool(recording) if terminal else None,
    )


class RetellProvider(HttpProvider):
    name = "retell"
    access_probe_path = "/v2/get-call/switchboard-access-probe"

    def __init__(
        self, settings: ProviderSettings, *, callback_tolerance_seconds: float = 300, **kw: Any
    ) -> None:
        super().__init__(settings, callback_tolerance_seconds=callback_tolerance_seconds, **kw)
        # Retell signs webhooks with the API key, not with a secret of their own.
        self._secret = settings.api_key.get_secret_value()

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """`POST /v2/create-phone-call`; our call id rides in `metadata` (Retell keeps and
        returns it), the variables as `retell_llm_dynamic_variables`. Retell sends
        webhooks to the agent's or the account's webhook URL: none is sent."""
        from_number = request.from_number or self._from_number
        if not from_number:
            raise self._http.permanent_error(
                "create_call", "needs a from_number (the route's or the provider setting)"
            )
        body = {
            "from_number": from_number,
            "to_number": request.to_number,
            "override_agent_id": request.provider_agent_id,
            "metadata": {"switchboard_call_id": request.call_id},
            # Retell takes string values only.
            "retell_llm_dynamic_variables": {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in request.variables.items()
            },
        }
        data = await self._http.request(
            "create_call", "POST", "/v2/create-phone-call", json_body=body
        )
        return self._read("create_call", data)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        data = await self._http.request("get_call", "GET", f"/v2/get-call/{provider_call_id}")
        return self._read("get_call", data)

    async def cancel_call(self, provider_call_id: str) -> None:
        """Retell's API has no call to end a live phone call: refused without a request.
        The dialer takes the refusal as "the provider settles it": the call goes on until
        the agent or the callee hangs up (or its max duration), and ends as it ends."""
        raise ProviderPermanentError("retell offers no API to end a phone call")

    async def recording_url(self, provider_call_id: str) -> str | None:
        """`recording_url` of the call, read afresh (Retell's links expire)."""
        data = await self._http.request(
            "fetch_recording", "GET", f"/v2/get-call/{provider_call_id}"
        )
        url = data.get("recording_url") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        RETELL.verify(self._secret, headers, body, self._tolerance)
        payload = json_object(body)
        call = payload.get("call")
        if payload.get("event") not in ("call_started", "call_ended", "call_analyzed") or (
            not isinstance(call, dict)
        ):
            raise MalformedCallback("a Retell webhook needs a known `event` and a `call` object")
        return parse_call(call)

    def _read(self, operation: str, data: Any) -> ProviderCallState:
        if not isinstance(data, dict):
            raise self._http.permanent_error(operation, "answer is not a JSON object")
        try:
            return parse_call(data)
        except MalformedCallback as exc:
            raise self._http.permanent_error(operation, str(exc)) from exc
