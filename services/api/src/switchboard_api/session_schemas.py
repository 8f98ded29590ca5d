"""Bodies of `/v1/sessions` (the OpenAPI document is the contract)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.json_values import SafeJsonObject
from switchboard_shared.domain.sessions import SESSION_VIEW_EXAMPLE, SessionStatus, SessionView
from switchboard_shared.domain.tenant_config import Language, MaxDuration, Prompt


class CreateSessionRequest(BaseModel):
    """Body of `POST /v1/sessions`: every field optional; your configuration
    (`GET /v1/config`) fills the rest. Unknown fields are rejected."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{}, {"agent": "altynai", "max_duration": 120}]},
    )

    agent: str | None = Field(
        default=None,
        description="Internal agent key (`GET /v1/agents`); its prompt and "
        "language apply unless given here.",
    )
    tier: Tier | None = Field(default=None, description="`basic` or `advanced`.")
    prompt: Prompt | None = Field(default=None, description="At most 8 KiB as UTF-8.")
    language: Language | None = Field(default=None, description="ISO 639-1 code.")
    max_duration: MaxDuration | None = Field(default=None, description="10-3600 seconds.")
    variables: SafeJsonObject | None = Field(
        default=None, description="Values passed to the agent (at most 16 KiB as JSON)."
    )
    metadata: SafeJsonObject | None = Field(
        default=None, description="Your own data, echoed back (at most 4 KiB as JSON)."
    )


class CreateSessionResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "sess_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                    "status": "active",
                    "join_url": "wss://voice.example.com/media/sessions/"
                    "sess_0f1e2d3c4b5a69788796a5b4c3d2e1f0?token=eyJhbGciOi...",
                    "max_duration": 300,
                    "tier": "basic",
                    "expires_at": "2026-01-15T09:35:00Z",
                }
            ]
        }
    )

    session_id: str
    status: SessionStatus
    join_url: str = Field(
        description="The browser's WebSocket URL: Switchboard's media edge with a "
        "single-use token valid for a minute (never your API key)."
    )
    max_duration: int
    tier: Tier
    expires_at: datetime = Field(description="When the session ends by itself (timeout).")


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int


class SessionList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sessions": [SESSION_VIEW_EXAMPLE],
                    "pagination": {"total": 1, "limit": 20, "offset": 0},
                }
            ]
        }
    )

    sessions: list[SessionView]
    pagination: Pagination
