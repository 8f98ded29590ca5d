"""Request and response bodies of the public API (the OpenAPI document is the contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.agents import AgentView
from switchboard_shared.domain.calls import CallStatus, CallView


class CreateCallRequest(BaseModel):
    """Body of `POST /v1/calls`. Unknown fields are rejected, so typos do not go unseen."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "+996700000000", "agent": "altynai"}]},
    )

    phone: str = Field(description="Number to call, E.164: '+' then digits.")
    agent: str = Field(description="Internal agent key, as listed by `GET /v1/agents`.")
    variables: dict[str, Any] | None = Field(
        default=None, description="Values passed to the agent (at most 16 KiB as JSON)."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Your own data, echoed back and never interpreted (at most 4 KiB as JSON).",
    )
    webhook_url: str | None = Field(
        default=None, description="Per-call webhook URL overriding the tenant endpoint."
    )


class CreateCallResponse(BaseModel):
    call_id: str = Field(description="Switchboard's id of the call (a UUID).")
    status: CallStatus = Field(description="Always `queued` for a new call.")


class CallList(BaseModel):
    data: list[CallView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class AgentList(BaseModel):
    data: list[AgentView]


class UsageView(BaseModel):
    total_calls: int
    total_seconds: int = Field(description="Sum of the durations of ended calls, in seconds.")
    active_calls: int = Field(description="Calls not in a terminal status yet.")
    by_status: dict[str, int] = Field(description="Number of calls in each status.")
