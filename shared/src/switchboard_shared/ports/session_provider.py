"""What the media edge needs of a provider that serves browser voice sessions: create a
session (an audio socket to open), end it, speak its socket's dialect. Adapters raise
the `ProviderError`s of `ports.provider`."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    async def close(self) -> None: ...
