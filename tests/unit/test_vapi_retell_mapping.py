"""Vapi's and Retell's statuses and end reasons mapped into ours, their webhooks'
authentication, and the ended_reason taxonomy itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from switchboard_shared.adapters.providers import retell, vapi
from switchboard_shared.adapters.providers.results import analysis_of, outcome_label, success_flag
from switchboard_shared.calls.provider_signatures import RETELL, VAPI
from switchboard_shared.domain.calls import Call, CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason as R
from switchboard_shared.domain.ended_reasons import error_message, read_reason
from switchboard_shared.ports import InvalidCallback, MalformedCallback

S = CallStatus


@pytest.mark.parametrize(
    ("status", "ended_reason", "ours", "reason"),
    [
        ("queued", None, S.DIALING, None),
        ("ringing", None, S.RINGING, None),
        ("in-progress", None, S.IN_PROGRESS, None),
        ("forwarding", None, S.IN_PROGRESS, None),
        ("ended", "customer-ended-call", S.COMPLETED, R.CUSTOMER_HANGUP),
        ("ended", "assistant-said-end-call-phrase", S.COMPLETED, R.AGENT_HANGUP),
        ("ended", "voicemail", S.COMPLETED, R.VOICEMAIL_REACHED),
        ("ended", "exceeded-max-duration", S.COMPLETED, R.MAX_DURATION_REACHED),
        ("ended", "silence-timed-out", S.COMPLETED, R.SILENCE_TIMEOUT),
        ("ended", "assistant-forwarded-call", S.COMPLETED, R.TRANSFERRED),
        ("ended", "customer-busy", S.BUSY, R.DIAL_BUSY),
        ("ended", "customer-did-not-answer", S.NO_ANSWER, R.DIAL_NO_ANSWER),
        ("ended", "twilio-failed-to-connect-call", S.FAILED, R.DIAL_FAILED),
        ("ended", "call.start.error-get-transport", S.FAILED, R.DIAL_FAILED),
        ("ended", "pipeline-error-openai-llm-failed", S.FAILED, R.PROVIDER_ERROR),
        ("ended", "manually-canceled", S.CANCELED, R.CANCELED),
        ("ended", "something-vapi-adds-later", S.COMPLETED, R.COMPLETED),
    ],
)
def test_vapi_status_and_ended_reason(
    status: str, ended_reason: str | None, ours: CallStatus, reason: R | None
) -> None:
    state = vapi.parse_call({"id": "v1", "status": status, "endedReason": ended_reason})
    assert (state.status, state.ended_reason) == (ours, reason)
    if ours.is_terminal:
        assert state.ended_reason_raw == ended_reason


def test_vapi_end_of_call_report_carries_the_results() -> None:
    message = {
        "type": "end-of-call-report",
        "endedReason": "customer-ended-call",
        "call": {"id": "v1", "status": "in-progress"},  # the call object may lag behind
        "artifact": {"recordingUrl": "https://storage.example/rec.wav"},
        "analysis": {
            "summary": "Booked for Tuesday.",
            "successEvaluation": "true",
            "structuredData": {"day": "Tuesday"},
        },
        "startedAt": "2025-02-09T12:00:00Z",
        "endedAt": "2025-02-09T12:02:07Z",
    }
    state = vapi.parse_call(message["call"], message)  # type: ignore[arg-type]
    assert (state.status, state.duration, state.recording_available) == (S.COMPLETED, 127, True)
    assert state.analysis is not None
    assert state.analysis.model_dump() == {
        "summary": "Booked for Tuesday.",
        "successful": True,
        "fields": {"day": "Tuesday"},
    }


@pytest.mark.parametrize(
    ("call_status", "disconnection_reason", "ours", "reason"),
    [
        ("registered", None, S.DIALING, None),
        ("ongoing", None, S.IN_PROGRESS, None),
        ("ended", "user_hangup", S.COMPLETED, R.CUSTOMER_HANGUP),
        ("ended", "agent_hangup", S.COMPLETED, R.AGENT_HANGUP),
        ("ended", "call_transfer", S.COMPLETED, R.TRANSFERRED),
        ("ended", "voicemail_reached", S.COMPLETED, R.VOICEMAIL_REACHED),
        ("ended", "inactivity", S.COMPLETED, R.SILENCE_TIMEOUT),
        ("ended", "max_duration_reached", S.COMPLETED, R.MAX_DURATION_REACHED),
        ("not_connected", "dial_busy", S.BUSY, R.DIAL_BUSY),
        ("not_connected", "dial_no_answer", S.NO_ANSWER, R.DIAL_NO_ANSWER),
        ("not_connected", "dial_failed", S.FAILED, R.DIAL_FAILED),
        ("not_connected", "invalid_destination", S.FAILED, R.INVALID_NUMBER),
        ("not_connected", "concurrency_limit_reached", S.FAILED, R.PROVIDER_REJECTED),
        ("error", "error_llm_websocket_open", S.FAILED, R.PROVIDER_ERROR),
        ("ended", "error_inbound_webhook", S.FAILED, R.PROVIDER_ERROR),
    ],
)
def test_retell_status_and_disconnection_reason(
    call_status: str, disconnection_reason: str | None, ours: CallStatus, reason: R | None
) -> None:
    state = retell.parse_call(
        {"call_id": "r1", "call_status": call_status, "disconnection_reason": disconnection_reason}
    )
    assert (state.status, state.ended_reason) == (ours, reason)


def test_retell_reads_its_call_object() -> None:
    state = retell.parse_call(
        {
            "call_id": "r1",
            "call_status": "ended",
            "disconnection_reason": "agent_hangup",
            "start_timestamp": 1703302407333,
            "end_timestamp": 1703302428855,
            "duration_ms": 21522,
            "recording_url": "https://dxc03zgurdly9.cloudfront.net/a/recording.wav",
            "call_analysis": {
                "call_summary": "The user asked about pricing.",
                "in_voicemail": True,
                "call_successful": False,
                "custom_analysis_data": {"plan": "pro"},
            },
        }
    )
    assert state.duration == 22
    assert state.ended_reason is R.VOICEMAIL_REACHED  # in_voicemail says more
    assert state.recording_available is True
    assert state.analysis is not None
    assert state.analysis.fields == {"plan": "pro"}
    assert state.started_at is not None
    assert state.started_at.year == 2023


@pytest.mark.parametrize("status", ["Ended", "", None, 3])
def test_unknown_vapi_and_retell_statuses_are_malformed(status: object) -> None:
    with pytest.raises(MalformedCallback):
        vapi.parse_call({"id": "v1", "status": status})
    with pytest.raises(MalformedCallback):
        retell.parse_call({"call_id": "r1", "call_status": status})


def test_retell_signature_is_what_its_sdk_verifies() -> None:
    # retell-typescript-sdk: createHmac('sha256', apiKey).update(body + timestamp)
    # .digest('hex'), sent as `v=<timestamp>,d=<digest>` with the time in milliseconds.
    body = json.dumps({"event": "call_ended", "call": {"call_id": "r1"}}).encode()
    millis = int(time.time() * 1000)
    digest = hmac.new(b"key_abc", body + str(millis).encode(), hashlib.sha256).hexdigest()

    RETELL.verify("key_abc", {"X-Retell-Signature": f"v={millis},d={digest}"}, body, 300)
    assert RETELL.sign("key_abc", body, millis // 1000)["x-retell-signature"].startswith(
        f"v={millis // 1000 * 1000},d="
    )
    with pytest.raises(InvalidCallback, match="does not match"):
        RETELL.verify("other", {"x-retell-signature": f"v={millis},d={digest}"}, body, 300)
    stale = RETELL.sign("key_abc", body, int(time.time()) - 600)
    with pytest.raises(InvalidCallback, match="tolerance"):
        RETELL.verify("key_abc", stale, body, 300)
    with pytest.raises(InvalidCallback, match="malformed"):
        RETELL.verify("key_abc", {"x-retell-signature": digest}, body, 300)


def test_vapi_secret_header() -> None:
    VAPI.verify("s3cret", {"X-Vapi-Secret": "s3cret"}, b"{}", 300)
    for headers in ({}, {"x-vapi-secret": "s3cre"}):
        with pytest.raises(InvalidCallback):
            VAPI.verify("s3cret", headers, b"{}", 300)
    with pytest.raises(InvalidCallback, match="no callback secret"):
        VAPI.verify("", {"x-vapi-secret": ""}, b"{}", 300)


# --- the taxonomy ---------------------------------------------------------------------------


def test_the_taxonomy_is_of_a_readable_size() -> None:
    assert 15 <= len(R) <= 25


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("hangup", R.COMPLETED),
        ("busy", R.DIAL_BUSY),
        ("no_answer", R.DIAL_NO_ANSWER),
        ("provider_timeout", R.PROVIDER_TIMEOUT),
        ("nonsense", None),
        (None, None),
    ],
)
def test_reasons_stored_before_the_taxonomy_still_read(stored: str | None, read: R | None) -> None:
    assert read_reason(stored) is read
    call = Call(tenant_id="t", agent="a", phone="+1", ended_reason=stored)
    assert call.ended_reason is read


def test_error_is_ours_and_only_for_failed_calls() -> None:
    assert (
        error_message(S.FAILED, R.DIAL_FAILED) == "The call could not be connected to the number."
    )
    assert error_message(S.FAILED, None) == "The call failed."
    assert error_message(S.BUSY, R.DIAL_BUSY) is None
    view = Call(
        tenant_id="t", agent="a", phone="+1", status=S.FAILED, ended_reason="provider_error"
    ).public_view()
    assert view.model_dump()["error"] == "The voice provider failed during the call."


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("successful", "successful"),
        ("Appointment booked", "appointment_booked"),
        ("  No-Answer!! ", "no_answer"),
        ("", None),
        ("!!!", None),
        (None, None),
    ],
)
def test_outcome_labels(raw: str | None, label: str | None) -> None:
    assert outcome_label(raw) == label


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (True, True),
        ("pass", True),
        ("false", False),
        ("Unsuccessful", False),
        (8, None),
        ("B", None),
    ],
)
def test_success_evaluations(value: object, flag: bool | None) -> None:
    assert success_flag(value) is flag


def test_an_analysis_with_nothing_in_it_is_none() -> None:
    assert analysis_of(None, None, {}) is None
    with pytest.raises(MalformedCallback):
        analysis_of("s", None, ["not", "an", "object"])
