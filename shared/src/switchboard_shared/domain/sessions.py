"""Browser voice sessions: one conversation between a user's browser and an agent, relayed
by the media edge. Rules only, no I/O: how a session ends, how long it lasted, what a
customer sees of it."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.calls import utcnow

SESSION_ID_PREFIX = "sess_"


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"  # ended by the customer, the browser or the provider
    TIMEOUT = "timeout"  # reached its max_duration


class SessionEndReason(StrEnum):
    MANUAL = "manual"  # DELETE /v1/sessions/{id}, or the page's End
    TIMEOUT = "timeout"
    CLIENT_DISCONNECTED = "client_disconnected"  # browser and provider gone, grace over
    PROVIDER_ERROR = "provider_error"  # the provider refused or dropped the session


def status_for(reason: SessionEndReason) -> SessionStatus:
    """The status a session ends in for `reason`."""
    return SessionStatus.TIMEOUT if reason is SessionEndReason.TIMEOUT else SessionStatus.ENDED


class TranscriptTurn(BaseModel):
    role: Literal["agent", "user"]
    text: str
    at: datetime = Field(default_factory=utcnow)


def merged_transcript(
    stored: list[TranscriptTurn], reported: list[TranscriptTurn]
) -> list[TranscriptTurn]:
    """A provider's after-the-fact transcript (`reported`, the whole conversation in
    order) over the one the media edge stored as turns arrived. The edge stores every
    turn in order, so what it can miss is the tail (killed before storing them): the
    first `len(stored)` reported turns are the ones stored already and only the rest
    are appended. Stored turns are never rewritten, and a report no longer than what is
    stored changes nothing, so a repeated webhook is harmless."""
    return [*stored, *reported[len(stored) :]]


class Elapsed(BaseModel):
    total_seconds: int
    display: str = Field(description="Minutes and seconds, like `0m 47s`.")

    @classmethod
    def of(cls, seconds: int) -> Elapsed:
        whole = max(0, seconds)
        return cls(total_seconds=whole, display=f"{whole // 60}m {whole % 60}s")


def new_session_id() -> str:
    return SESSION_ID_PREFIX + uuid.uuid4().hex


class Session(BaseModel):
    """A stored session. `api_key_id` holds the one-active-session-per-key rule;
    the provider fields are internal and never shown."""

    session_id: str = Field(default_factory=new_session_id)
    tenant_id: str
    api_key_id: str
    status: SessionStatus = SessionStatus.ACTIVE
    tier: Tier
    agent: str | None = None
    prompt: str
    language: str
    max_duration: int
    variables: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=utcnow)
    # When it ends by itself (status timeout): started_at + max_duration.
    expires_at: datetime
    ended_at: datetime | None = None
    reason: SessionEndReason | None = None
    duration: int | None = None  # whole seconds, set when the session ends
    transcript: list[TranscriptTurn] = Field(default_factory=list)
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    # --- internal only ------------------------------------------------------------------
    # A media edge relaying the session pushes this forward; past it, nobody is (the
    # browser never joined, or its edge died) and the sweep ends it client_disconnected.
    alive_until: datetime | None = None
    provider: str | None = None
    provider_session_id: str | None = None
    # Set when the session ends, cleared once session.ended has its deliveries: the
    # notifier's sweep sends the ones whose event was lost.
    notify_pending: bool = False
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _expires_after_max_duration(cls, data: Any) -> Any:
        """A new session expires `max_duration` after it started (stored, so a sweep can
        find the expired ones with an index)."""
        if isinstance(data, dict) and data.get("expires_at") is None:
            started = data.get("started_at") or utcnow()
            if isinstance(started, datetime) and isinstance(data.get("max_duration"), int):
                expires = started + timedelta(seconds=data["max_duration"])
                data = {**data, "started_at": started, "expires_at": expires}
        return data

    @property
    def is_active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    def elapsed(self, now: datetime | None = None) -> Elapsed:
        """Live while active (never past max_duration), final once ended."""
        if self.duration is not None:
            return Elapsed.of(self.duration)
        return Elapsed.of(self.seconds_until(self.ended_at or now or utcnow()))

    def seconds_until(self, moment: datetime) -> int:
        """Whole seconds from the start to `moment`, at most max_duration."""
        seconds = math.floor((moment - self.started_at).total_seconds())
        return max(0, min(seconds, self.max_duration))

    def public_view(self, now: datetime | None = None) -> SessionView:
        return SessionView(
            session_id=self.session_id,
            status=self.status,
            tier=self.tier,
            agent=self.agent,
            elapsed=self.elapsed(now),
            max_duration=self.max_duration,
            started_at=self.started_at,
            ended_at=self.ended_at,
            reason=self.reason,
            transcript=self.transcript,
            variables=self.variables,
            metadata=self.metadata,
        )


SESSION_VIEW_EXAMPLE: dict[str, Any] = {
    "session_id": "sess_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "status": "ended",
    "tier": "basic",
    "agent": None,
    "elapsed": {"total_seconds": 47, "display": "0m 47s"},
    "max_duration": 300,
    "started_at": "2026-01-15T09:30:00Z",
    "ended_at": "2026-01-15T09:30:47Z",
    "reason": "manual",
    "transcript": [
        {"role": "agent", "text": "Hello! How can I help?", "at": "2026-01-15T09:30:01Z"},
        {"role": "user", "text": "What are your opening hours?", "at": "2026-01-15T09:30:06Z"},
    ],
    "variables": {"name": "Aida"},
    "metadata": {"order_id": "A-1001"},
}


class SessionView(BaseModel):
    """A session as `GET /v1/sessions/{id}` shows it (no provider detail)."""

    model_config = ConfigDict(json_schema_extra={"examples": [SESSION_VIEW_EXAMPLE]})

    session_id: str
    status: SessionStatus
    tier: Tier
    agent: str | None
    elapsed: Elapsed
    max_duration: int
    started_at: datetime
    ended_at: datetime | None
    reason: SessionEndReason | None
    transcript: list[TranscriptTurn]
    variables: dict[str, Any]
    metadata: dict[str, Any]


class SessionEndedData(BaseModel):
    """The `data` of a `session.ended` event and webhook."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    reason: SessionEndReason
    duration: Elapsed
    transcript: list[TranscriptTurn]
    tier: Tier
    agent: str | None
    variables: dict[str, Any]
    metadata: dict[str, Any]
    ended_at: datetime

    @classmethod
    def of(cls, session: Session) -> SessionEndedData:
        """The data of an ended session (ValueError for an active one)."""
        if session.reason is None or session.ended_at is None:
            raise ValueError(f"session {session.session_id} has not ended")
        return cls(
            session_id=session.session_id,
            reason=session.reason,
            duration=session.elapsed(),
            transcript=session.transcript,
            tier=session.tier,
            agent=session.agent,
            variables=session.variables,
            metadata=session.metadata,
            ended_at=session.ended_at,
        )


class SessionPage(BaseModel):
    sessions: list[Session]
    total: int


class SessionUsage(BaseModel):
    total_sessions: int
    session_seconds: int
    active_sessions: int
