"""Request and response bodies of the public API (the OpenAPI document is the contract)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.agents import AgentView
from switchboard_shared.domain.blocked_numbers import BlockedNumberView
from switchboard_shared.domain.calls import CallStatus, CallView
from switchboard_shared.domain.json_values import MAX_JSON_DEPTH, SafeJsonObject
from switchboard_shared.domain.scheduling import CallingWindow, RetryPolicy


class CreateCallRequest(BaseModel):
    """Body of `POST /v1/calls`. Unknown fields are rejected, so typos do not go unseen."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "+996700000000", "agent": "altynai"}]},
    )

    phone: str = Field(description="Number to call, E.164: '+' then digits.")
    agent: str = Field(description="Internal agent key, as listed by `GET /v1/agents`.")
    variables: SafeJsonObject | None = Field(
        default=None,
        description="Values passed to the agent (at most 16 KiB as JSON, "
        f"{MAX_JSON_DEPTH} levels deep; finite numbers, integers within 64 bits).",
    )
    metadata: SafeJsonObject | None = Field(
        default=None,
        description="Your own data, echoed back and never interpreted (at most 4 KiB as "
        f"JSON, {MAX_JSON_DEPTH} levels deep; finite numbers, integers within 64 bits).",
    )
    webhook_url: str | None = Field(
        default=None, description="Per-call webhook URL overriding the tenant endpoint."
    )
    scheduled_at: datetime | None = Field(
        default=None,
        description="ISO 8601 (UTC without an offset): not dialed before then; past or "
        "absent: now.",
    )
    calling_window: CallingWindow | None = Field(
        default=None,
        description="Local hours in which the call (and each redial) may start; a call "
        "due outside them waits for the next opening.",
    )
    retry: RetryPolicy | None = Field(
        default=None,
        description="Redial an attempt that ended with one of these statuses: attempts "
        "1 to 10 in all, delay 60 s to 7 days.",
    )


class CreateCallResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f", "status": "queued"}]
        }
    )

    call_id: str = Field(description="Switchboard's id of the call (a UUID).")
    status: CallStatus = Field(
        description="`queued`, or `scheduled` when the call waits for its time."
    )


class CallList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "call_id": "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                            "status": "completed",
                            "agent": "altynai",
                            "phone": "+996700000000",
                            "transcript": "agent: Hello\nuser: Hi",
                            "duration": 42,
                            "created_at": "2026-01-15T09:30:00Z",
                            "started_at": "2026-01-15T09:30:04Z",
                            "ended_at": "2026-01-15T09:30:46Z",
                            "ended_reason": "completed",
                            "variables": {"name": "Aida"},
                            "metadata": {"order_id": "A-1001"},
                        }
                    ],
                    "next_cursor": "eyJjcmVhdGVkX2F0IjoiMjAyNi0wMS0xNVQwOTozMDowMFoifQ",
                }
            ]
        }
    )

    data: list[CallView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class AgentList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "key": "altynai",
                            "name": "Altynai",
                            "description": "Appointment reminders",
                            "language": "ky",
                        }
                    ]
                }
            ]
        }
    )

    data: list[AgentView]


class UsageView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total_calls": 12,
                    "total_seconds": 504,
                    "active_calls": 1,
                    "by_status": {
                        "queued": 0,
                        "dialing": 0,
                        "ringing": 0,
                        "in_progress": 1,
                        "completed": 10,
                        "failed": 1,
                        "no_answer": 0,
                        "busy": 0,
                        "canceled": 0,
                    },
                    "total_sessions": 5,
                    "session_seconds": {"seconds": 281, "display": "4m 41s"},
                    "active_sessions": 1,
                    "concurrency": {"limit": 10, "active": 1, "queued": 0},
                }
            ]
        }
    )

    total_calls: int
    total_seconds: int = Field(description="Sum of the durations of ended calls, in seconds.")
    active_calls: int = Field(description="Calls not in a terminal status yet.")
    by_status: dict[str, int] = Field(description="Number of calls in each status.")
    total_sessions: int = Field(description="Browser voice sessions, active ones included.")
    session_seconds: SessionSeconds = Field(description="Summed duration of ended sessions.")
    active_sessions: int = Field(description="Sessions active now.")
    concurrency: Concurrency


class Concurrency(BaseModel):
    """The tenant's concurrent calls: beyond `limit`, a call waits in `queued`."""

    limit: int = Field(description="Calls the tenant may have placed and live at once.")
    active: int = Field(description="Calls holding one of those slots now.")
    queued: int = Field(description="Calls in `queued`: waiting for a slot or about to dial.")


class SessionSeconds(BaseModel):
    seconds: int
    display: str = Field(description="Minutes and seconds, like `4m 41s`.")


class BlockedNumberList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [{"phone": "+996700000001", "created_at": "2026-01-15T09:30:00Z"}],
                    "next_cursor": "WyJiIiwxNzY4NDY5NDAwMDAwLCIrOTk2NzAwMDAwMDAxIl0",
                }
            ]
        }
    )

    data: list[BlockedNumberView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
