"""What the media edge needs of a provider that serves browser voice sessions: create a
session (an audio socket to open), end it, speak its socket's dialect; and what the
webhook ingest needs: read the provider's session webhooks. Adapters raise the
`ProviderError`s, `InvalidCallback` and `MalformedCallback` of `ports.provider`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class ProviderSessionRequest:
    session_id: str  # ours, for the provider's logs; never a customer's secret
    provider_agent_id: str
    prompt: str
    language: str
    variables: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderSession:
    """Where the provider's audio socket is, once created: a short-lived signed URL the
    media edge connects to (never shown to the browser)."""

    socket_url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionSignal:
    """One thing a provider's socket said, in our terms.

    `ready`: the session is up (`sample_rate`, `encoding` of the audio it sends, and its
    `provider_session_id`); `audio`: agent audio (`audio`); `turn`: a transcript turn
    (`role`, `text`); `reply`: a frame to send back as is (`reply`, a keep-alive)."""

    kind: Literal["ready", "audio", "turn", "reply"]
    audio: bytes = b""
    role: Literal["agent", "user"] = "agent"
    text: str = ""
    reply: str = ""
    sample_rate: int = 16_000
    encoding: str = "pcm_s16le"
    provider_session_id: str = ""


@dataclass(frozen=True)
class CallbackTurn:
    """One transcript turn of a provider's session webhook; `offset_seconds` from the
    start of the conversation, when the provider says."""

    role: Literal["agent", "user"]
    text: str
    offset_seconds: float | None = None


@dataclass(frozen=True)
class SessionCallback:
    """A provider's word, after the fact, on one of its sessions (ElevenLabs'
    `post_call_transcription`): the whole transcript as it recorded it, and whether the
    conversation is over (`ended`; `failed` when it ended in error). `started_at` and
    `duration_seconds` are the provider's, when it gives them."""

    provider_session_id: str
    turns: list[CallbackTurn]
    ended: bool = True
    failed: bool = False
    started_at: datetime | None = None
    duration_seconds: int | None = None


@runtime_checkable
class SessionProvider(Protocol):
    name: str

    async def create_session(self, request: ProviderSessionRequest) -> ProviderSession:
        """Ask the provider for a session's audio socket. ProviderPermanentError when it
        refuses, ProviderTransientError when it cannot be reached."""

    def opening_frames(self, request: ProviderSessionRequest) -> list[str]:
        """The text frames to send right after connecting (the session's prompt...)."""

    def audio_frame(self, pcm16: bytes) -> str | bytes:
        """The frame carrying a chunk of the browser's 16 kHz mono PCM16."""

    def parse_session_message(self, message: str | bytes) -> list[SessionSignal]:
        """What one frame from the provider's socket means (nothing for frames that do
        not matter to us). MalformedCallback for a frame it cannot read."""

    async def end_session(self, provider_session_id: str) -> None:
        """End the session at the provider, after the edge closed its socket: for a
        provider that keeps a session (and bills it) past its socket. ProviderError when
        it could not."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> SessionCallback | None:
        """Verify and read one of the provider's session webhooks. InvalidCallback for a
        missing, wrong or stale signature (checked first, before the body is read);
        MalformedCallback for a signed body it cannot read; None for a signed event
        that says nothing about a session's transcript or end (another type)."""

    async def close(self) -> None: ...
