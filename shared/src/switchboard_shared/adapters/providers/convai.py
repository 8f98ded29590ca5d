"""Browser voice sessions on ElevenLabs' Conversational AI WebSocket API (docs/providers.md
cites it), and on the simulator, which speaks the same dialect.

The edge asks `GET /v1/convai/conversation/get_signed_url?agent_id=…` (header
`xi-api-key`) for a signed socket URL, sends `conversation_initiation_client_data` with
the session's prompt and language, streams `{"user_audio_chunk": base64 PCM16}` and
reads `conversation_initiation_metadata`, `audio`, `agent_response`, `user_transcript`
and `ping` (answered with `pong`).

After a conversation, ElevenLabs POSTs a `post_call_transcription` webhook (header
`ElevenLabs-Signature`, keyed by the webhook's secret: `callback_secret` here) with the
conversation's whole transcript; `parse_callback` reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from switchboard_shared.adapters.providers.http import json_object
from switchboard_shared.calls.provider_signatures import (
    ELEVENLABS,
    ELEVENLABS_TOLERANCE_SECONDS,
)
from switchboard_shared.ports import (
    MalformedCallback,
    ProviderPermanentError,
    ProviderTransientError,
)
from switchboard_shared.ports.session_provider import (
    CallbackTurn,
    ProviderSession,
    ProviderSessionRequest,
    SessionCallback,
    SessionSignal,
)
from switchboard_shared.runtime.settings import ProviderSettings


class ConvaiSessions:
    """`SessionProvider` for a Conversational AI endpoint at `settings.base_url`."""

    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.base_url:
            raise ValueError(f"{name}: no base_url")
        self.name = name
        self._webhook_secret = settings.callback_secret.get_secret_value()
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"xi-api-key": settings.api_key.get_secret_value()},
            timeout=settings.timeout_seconds,
            transport=transport,
        )

    async def create_session(self, request: ProviderSessionRequest) -> ProviderSession:
        try:
            response = await self._client.get(
                "/v1/convai/conversation/get_signed_url",
                params={"agent_id": request.provider_agent_id},
            )
        except httpx.HTTPError as exc:
            raise ProviderTransientError(f"{self.name}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderTransientError(f"{self.name}: signed URL answered {response.status_code}")
        if response.status_code >= 400:
            raise ProviderPermanentError(
                f"{self.name}: signed URL refused ({response.status_code})"
            )
        try:
            url = response.json()["signed_url"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderPermanentError(f"{self.name}: no signed_url in the answer") from exc
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ProviderPermanentError(f"{self.name}: signed_url is not a WebSocket URL")
        return ProviderSession(socket_url=url)

    def opening_frames(self, request: ProviderSessionRequest) -> list[str]:
        override = {"agent": {"prompt": {"prompt": request.prompt}, "language": request.language}}
        variables = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in request.variables.items()
        }
        message = {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": override,
            "dynamic_variables": variables,
        }
        return [json.dumps(message)]

    def audio_frame(self, pcm16: bytes) -> str:
        # What json.dumps writes (base64 needs no escaping), without its encoder: this
        # runs for every frame a browser sends (bench/RESULTS.md, sessions).
        return '{"user_audio_chunk": "' + base64.b64encode(pcm16).decode() + '"}'

    def parse_session_message(self, message: str | bytes) -> list[SessionSignal]:
        try:
            data: Any = json.loads(message)
        except ValueError as exc:
            raise MalformedCallback(f"{self.name}: a frame that is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedCallback(f"{self.name}: a frame that is not an object")
        kind = data.get("type")
        try:
            if kind == "conversation_initiation_metadata":
                meta = data["conversation_initiation_metadata_event"]
                rate = _pcm_rate(meta.get("agent_output_audio_format", "pcm_16000"))
                return [
                    SessionSignal(
                        kind="ready",
                        sample_rate=rate,
                        provider_session_id=str(meta.get("conversation_id", "")),
                    )
                ]
            if kind == "audio":
                chunk = base64.b64decode(data["audio_event"]["audio_base_64"], validate=True)
                return [SessionSignal(kind="audio", audio=chunk)]
            if kind == "agent_response":
                text = str(data["agent_response_event"]["agent_response"])
                return [SessionSignal(kind="turn", role="agent", text=text)]
            if kind == "user_transcript":
                text = str(data["user_transcription_event"]["user_transcript"])
                return [SessionSignal(kind="turn", role="user", text=text)]
            if kind == "ping":
                event_id = data["ping_event"]["event_id"]
                return [
                    SessionSignal(
                        kind="reply", reply=json.dumps({"type": "pong", "event_id": event_id})
                    )
                ]
        except (KeyError, TypeError, binascii.Error) as exc:
            raise MalformedCallback(f"{self.name}: a {kind} frame of the wrong shape") from exc
        return []

    async def end_session(self, provider_session_id: str) -> None:
        """Nothing to ask: a Conversational AI conversation ends when its socket closes
        (the API's `DELETE /v1/convai/conversations/{id}` deletes the record, which we
        must not do)."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> SessionCallback | None:
        """`post_call_transcription`: `data.conversation_id`, `data.status` (`done` or
        `failed`), `data.transcript` (`{role, message, time_in_call_secs}`, turns without
        a message, such as tool calls, skipped) and `data.metadata`
        (`start_time_unix_secs`, `call_duration_secs`). Other types: None."""
        ELEVENLABS.verify(self._webhook_secret, headers, body, ELEVENLABS_TOLERANCE_SECONDS)
        event = json_object(body)
        if event.get("type") != "post_call_transcription":
            return None
        try:
            data = event["data"]
            conversation_id = data["conversation_id"]
            if not isinstance(conversation_id, str) or not conversation_id:
                raise TypeError("conversation_id")
            transcript = data.get("transcript") or []
            if not isinstance(transcript, list):
                raise TypeError("transcript is not a list")
            metadata = data.get("metadata") or {}
            return SessionCallback(
                provider_session_id=conversation_id,
                turns=[_turn(entry) for entry in transcript if _said(entry)],
                failed=data.get("status") == "failed",
                started_at=_unix_time(metadata.get("start_time_unix_secs")),
                duration_seconds=_whole_seconds(metadata.get("call_duration_secs")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedCallback(
                f"{self.name}: a post_call_transcription of the wrong shape ({exc})"
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _said(entry: Any) -> bool:
    return (
        isinstance(entry, dict) and isinstance(entry.get("message"), str) and bool(entry["message"])
    )


def _turn(entry: dict[str, Any]) -> CallbackTurn:
    role = entry["role"]
    if role not in ("agent", "user"):
        raise ValueError(f"a transcript role {role!r}")
    offset = entry.get("time_in_call_secs")
    return CallbackTurn(
        role=role,
        text=entry["message"],
        offset_seconds=float(offset) if isinstance(offset, int | float) else None,
    )


def _unix_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _whole_seconds(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return None


def _pcm_rate(audio_format: object) -> int:
    """16000 for `pcm_16000`; MalformedCallback for a format that is not raw PCM."""
    if not isinstance(audio_format, str) or not audio_format.startswith("pcm_"):
        raise MalformedCallback(f"unsupported audio format {audio_format!r}")
    try:
        return int(audio_format.removeprefix("pcm_"))
    except ValueError as exc:
        raise MalformedCallback(f"unsupported audio format {audio_format!r}") from exc


# The providers that serve browser voice sessions (elevenlabs serves nothing else).
SESSION_PROVIDERS = ("simulator", "elevenlabs")


def build_session_providers(
    simulator: ProviderSettings, elevenlabs: ProviderSettings
) -> dict[str, ConvaiSessions]:
    """A session adapter for each enabled provider that serves browser sessions."""
    candidates = {"simulator": simulator, "elevenlabs": elevenlabs}
    return {name: ConvaiSessions(name, s) for name, s in candidates.items() if s.base_url}
