"""The contract of a session adapter's `parse_callback`, on ElevenLabs'
`post_call_transcription` (ElevenLabs-Signature: t=<unix>,v0=<hex HMAC of "t.body">)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard_shared.adapters.providers.convai import ConvaiSessions
from switchboard_shared.calls.provider_signatures import ELEVENLABS
from switchboard_shared.ports import InvalidCallback, MalformedCallback
from switchboard_shared.runtime.settings import ProviderSettings

SECRET = "wsec_test_secret"


def adapter(secret: str = SECRET) -> ConvaiSessions:
    settings = ProviderSettings(base_url="https://api.elevenlabs.io", callback_secret=secret)
    return ConvaiSessions("elevenlabs", settings)


def transcription(**data: Any) -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": 1_739_537_297,
        "data": {
            "agent_id": "agent_1",
            "conversation_id": "conv_1",
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hello!", "time_in_call_secs": 0},
                {"role": "user", "message": "Hi", "time_in_call_secs": 2.5},
                {"role": "agent", "message": None, "tool_calls": [{"name": "x"}]},
                {"role": "agent", "message": "Bye", "time_in_call_secs": 7},
            ],
            "metadata": {"start_time_unix_secs": 1_739_537_200, "call_duration_secs": 9},
            **data,
        },
    }


def signed(
    payload: Any, secret: str = SECRET, at: int | None = None
) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ELEVENLABS.sign(secret, body, at), body


def test_a_signed_transcription_reads_as_the_whole_conversation() -> None:
    callback = adapter().parse_callback(*signed(transcription()))
    assert callback is not None
    assert callback.provider_session_id == "conv_1"
    assert [(t.role, t.text, t.offset_seconds) for t in callback.turns] == [
        ("agent", "Hello!", 0.0),
        ("user", "Hi", 2.5),
        ("agent", "Bye", 7.0),  # the tool call, which says nothing, is skipped
    ]
    assert (callback.ended, callback.failed) == (True, False)
    assert callback.started_at == datetime.fromtimestamp(1_739_537_200, UTC)
    assert callback.duration_seconds == 9


def test_the_signature_is_elevenlabs_documented_hmac() -> None:
    headers, body = signed(transcription(), at=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers == {"ElevenLabs-Signature": f"t=1700000000,v0={expected}"}


def test_a_failed_conversation_says_so() -> None:
    callback = adapter().parse_callback(*signed(transcription(status="failed")))
    assert callback is not None
    assert callback.failed


def test_another_event_type_is_none() -> None:
    audio = {"type": "post_call_audio", "data": {"conversation_id": "conv_1", "full_audio": ""}}
    assert adapter().parse_callback(*signed(audio)) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"ElevenLabs-Signature": "garbage"},
        {"ElevenLabs-Signature": f"t={int(time.time())}"},
        {"ElevenLabs-Signature": f"t=soon,v0={'0' * 64}"},
    ],
)
def test_a_missing_or_malformed_signature_is_refused(headers: dict[str, str]) -> None:
    _, body = signed(transcription())
    with pytest.raises(InvalidCallback):
        adapter().parse_callback(headers, body)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidCallback, match="does not match"):
        adapter().parse_callback(*signed(transcription(), secret="another"))


def test_a_changed_body_is_refused() -> None:
    headers, body = signed(transcription())
    with pytest.raises(InvalidCallback, match="does not match"):
        adapter().parse_callback(headers, body.replace(b"Hello", b"Hallo"))


def test_a_stale_timestamp_is_refused_past_thirty_minutes() -> None:
    now = int(time.time())
    assert adapter().parse_callback(*signed(transcription(), at=now - 29 * 60)) is not None
    with pytest.raises(InvalidCallback, match="tolerance"):
        adapter().parse_callback(*signed(transcription(), at=now - 31 * 60))


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(InvalidCallback, match="no ElevenLabs webhook secret"):
        adapter(secret="").parse_callback(*signed(transcription(), secret=""))


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps([1, 2]).encode(),
        json.dumps({"type": "post_call_transcription"}).encode(),
        json.dumps(transcription(conversation_id=None)).encode(),
        json.dumps(transcription(transcript=[{"role": "robot", "message": "hi"}])).encode(),
        json.dumps(transcription(transcript="hello")).encode(),
    ],
)
def test_a_signed_body_it_cannot_read_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        adapter().parse_callback(*signed(body))
