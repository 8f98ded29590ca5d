"""Join tokens, the Conversational AI dialect's frames, and elapsed-time display: the
pure parts of browser sessions."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from switchboard_shared.adapters.providers.convai import ConvaiSessions
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import Elapsed
from switchboard_shared.ports import MalformedCallback
from switchboard_shared.ports.session_provider import ProviderSessionRequest
from switchboard_shared.runtime.settings import ProviderSettings
from switchboard_shared.sessions.join_tokens import (
    InvalidJoinToken,
    issue_join_token,
    read_join_token,
)

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_token_reads_back_its_session() -> None:
    token, claims = issue_join_token(SECRET, "sess_1", 60)
    assert read_join_token(SECRET, token) == claims


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3] + "abc",  # forged signature
        lambda t: "not-a-token",
        lambda t: "",
    ],
)
def test_a_forged_token_is_refused(mangle: object) -> None:
    token, _ = issue_join_token(SECRET, "sess_1", 60)
    with pytest.raises(InvalidJoinToken):
        read_join_token(SECRET, mangle(token))  # type: ignore[operator]


def test_an_expired_or_foreign_token_is_refused() -> None:
    old, _ = issue_join_token(SECRET, "sess_1", 60, now=utcnow() - timedelta(minutes=5))
    with pytest.raises(InvalidJoinToken):
        read_join_token(SECRET, old)
    token, _ = issue_join_token("another-deployments-secret-of-32-bytes", "sess_1", 60)
    with pytest.raises(InvalidJoinToken):
        read_join_token(SECRET, token)


@pytest.mark.parametrize(
    ("seconds", "display"), [(0, "0m 0s"), (47, "0m 47s"), (61, "1m 1s"), (3600, "60m 0s")]
)
def test_elapsed_display(seconds: int, display: str) -> None:
    assert Elapsed.of(seconds).display == display


@pytest.fixture
def convai() -> ConvaiSessions:
    return ConvaiSessions("elevenlabs", ProviderSettings(base_url="https://api.elevenlabs.io"))


def test_convai_opening_frame_carries_the_prompt(convai: ConvaiSessions) -> None:
    request = ProviderSessionRequest("sess_1", "agent_1", "Be brief.", "ky", {"n": 1})
    (frame,) = convai.opening_frames(request)
    message = json.loads(frame)
    assert message["type"] == "conversation_initiation_client_data"
    assert message["conversation_config_override"]["agent"] == {
        "prompt": {"prompt": "Be brief."},
        "language": "ky",
    }
    assert message["dynamic_variables"] == {"n": "1"}


def test_convai_frames_become_signals(convai: ConvaiSessions) -> None:
    pcm = b"\x01\x02" * 10
    assert json.loads(convai.audio_frame(pcm)) == {
        "user_audio_chunk": base64.b64encode(pcm).decode()
    }
    meta = {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_1",
            "agent_output_audio_format": "pcm_24000",
        },
    }
    (ready,) = convai.parse_session_message(json.dumps(meta))
    assert (ready.kind, ready.sample_rate, ready.provider_session_id) == ("ready", 24000, "conv_1")
    audio = {"type": "audio", "audio_event": {"audio_base_64": base64.b64encode(pcm).decode()}}
    assert convai.parse_session_message(json.dumps(audio))[0].audio == pcm
    said = {"type": "user_transcript", "user_transcription_event": {"user_transcript": "Hi"}}
    (turn,) = convai.parse_session_message(json.dumps(said))
    assert (turn.kind, turn.role, turn.text) == ("turn", "user", "Hi")
    ping = {"type": "ping", "ping_event": {"event_id": 7}}
    (reply,) = convai.parse_session_message(json.dumps(ping))
    assert json.loads(reply.reply) == {"type": "pong", "event_id": 7}
    assert convai.parse_session_message(json.dumps({"type": "vad_score"})) == []


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1]",
        json.dumps({"type": "audio", "audio_event": {}}),
        json.dumps({"type": "audio", "audio_event": {"audio_base_64": "***"}}),
        json.dumps(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "agent_output_audio_format": "ulaw_8000"
                },
            }
        ),
    ],
)
def test_convai_refuses_frames_it_cannot_read(convai: ConvaiSessions, frame: str) -> None:
    with pytest.raises(MalformedCallback):
        convai.parse_session_message(frame)
