"""What the dialer and webhook-ingest need of a voice-AI provider; each adapter in
`switchboard_shared.adapters.providers` speaks one provider's API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from switchboard_shared.domain.agents import AgentSpec
from switchboard_shared.domain.calls import CallAnalysis, CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason


class ProviderError(Exception):
    """Base of provider failures."""


class ProviderTransientError(ProviderError):
    """Worth retrying: connect error, timeout, 429, 5xx. Unless it is the subclass
    ProviderAmbiguousError, the provider did not accept the request."""


class ProviderAmbiguousError(ProviderTransientError):
    """The request was sent and its answer lost (a read timeout, a dropped connection):
    the provider may have placed the call. Never dial elsewhere before asking it."""


class ProviderPermanentError(ProviderError):
    """Retrying will not help: a 4xx, an unknown agent or number."""


class LookupUnsupported(ProviderError):
    """The provider offers no way to find a call by our reference."""


class RecordingNotFound(ProviderError):
    """The provider has no recording for the call (yet, or any more)."""


class RangeNotSatisfiable(ProviderError):
    """The requested byte range lies outside the recording."""


class InvalidCallback(Exception):
    """A provider callback that is not authentic (bad, missing or stale signature)."""


class MalformedCallback(Exception):
    """An authentic callback whose body cannot be understood."""


@dataclass(frozen=True)
class ProviderCallRequest:
    call_id: str  # our id: sent where the provider keeps metadata, never needed back
    to_number: str
    from_number: str | None
    # The agent's id at the provider; None: send `agent` itself, where the API takes it.
    provider_agent_id: str | None
    variables: Mapping[str, Any]
    callback_url: str
    agent: AgentSpec | None = None


@dataclass(frozen=True)
class ProviderCallState:
    """A provider's view of one call, already mapped to our statuses."""

    provider_call_id: str
    status: CallStatus
    transcript: str | None = None
    duration: int | None = None
    ended_reason: EndedReason | None = None
    # The provider's own code behind `ended_reason`, kept for operators.
    ended_reason_raw: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    analysis: CallAnalysis | None = None
    # None: this message does not say (a status update); False: the call has none.
    recording_available: bool | None = None


@dataclass
class RecordingStream:
    """A recording (or a byte range of it) as the provider answers it: our response
    headers are built from these fields only, never copied from the provider's."""

    status_code: int  # 200, or 206 for a range
    content_type: str
    content_length: int | None
    content_range: str | None
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]  # releases the provider connection

    async def aclose(self) -> None:
        await self.close()


class Provider(Protocol):
    name: str

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """Place the call. Raises ProviderTransientError or ProviderPermanentError."""

    async def get_call(self, provider_call_id: str) -> ProviderCallState: ...

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        """The provider's call created for our `call_id` (sent as its reference or
        idempotency key), None when the provider has none. Raises LookupUnsupported when
        the provider cannot look calls up that way, ProviderTransientError when it cannot
        answer now."""

    async def cancel_call(self, provider_call_id: str) -> None: ...

    async def check_access(self) -> None:
        """Returns when the provider is reachable and accepts our credentials, placing
        nothing (`switchboard doctor`). Raises ProviderPermanentError when it refuses
        them, ProviderTransientError when it cannot be reached."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        """Verify the signature (InvalidCallback) and parse the native body
        (MalformedCallback) into our statuses."""

    async def fetch_recording(
        self, provider_call_id: str, byte_range: str | None = None
    ) -> RecordingStream:
        """Open the call's recording with the provider's credentials; `byte_range` is an
        HTTP `Range` value passed on. Raises RecordingNotFound, RangeNotSatisfiable,
        ProviderTransientError or ProviderPermanentError. The caller must `aclose()` it."""

    async def close(self) -> None: ...
