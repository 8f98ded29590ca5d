"""A call's timeline for `GET /v1/calls/{id}/events`: what happened to it, in order, in
our words: status changes with their time and reason, each dial attempt's outcome, and
each webhook delivery attempt with its status code and latency. Built from what the
store keeps; no provider name, id or address ever appears in it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.calls import Call, CallStatus, RouteOutcome
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.domain.webhooks import Delivery

# What a customer is told about a dial attempt (the route and provider stay internal).
_DIAL_OUTCOMES: dict[RouteOutcome, str] = {
    RouteOutcome.ACCEPTED: "accepted",
    RouteOutcome.UNREACHABLE: "provider_unavailable",
    RouteOutcome.AMBIGUOUS: "no_answer_from_provider",
    RouteOutcome.REJECTED: "rejected_by_provider",
}


class TimelineEntry(BaseModel):
    type: Literal["status", "dial_attempt", "webhook_attempt"]
    at: datetime
    status: CallStatus | None = Field(default=None, description="`status` entries: the new status.")
    reason: EndedReason | None = Field(default=None, description="Why a terminal status came.")
    outcome: str | None = Field(
        default=None,
        description="`dial_attempt`: accepted, provider_unavailable, no_answer_from_provider "
        "or rejected_by_provider (another route is tried after the first two).",
    )
    event_type: str | None = Field(default=None, description="`webhook_attempt`: the event.")
    delivery_id: str | None = None
    status_code: int | None = Field(default=None, description="The endpoint's HTTP status.")
    latency_ms: int | None = None
    error: str | None = Field(default=None, description="Why the attempt failed, if it did.")


class Timeline(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "call_id": "6f1c2d3e-0000-4000-8000-000000000000",
                    "data": [
                        {"type": "status", "at": "2026-05-01T09:00:00Z", "status": "queued"},
                        {
                            "type": "dial_attempt",
                            "at": "2026-05-01T09:00:00.2Z",
                            "outcome": "provider_unavailable",
                        },
                        {
                            "type": "dial_attempt",
                            "at": "2026-05-01T09:00:00.4Z",
                            "outcome": "accepted",
                        },
                        {"type": "status", "at": "2026-05-01T09:00:00.4Z", "status": "dialing"},
                        {"type": "status", "at": "2026-05-01T09:00:05Z", "status": "ringing"},
                        {"type": "status", "at": "2026-05-01T09:00:09Z", "status": "in_progress"},
                        {
                            "type": "status",
                            "at": "2026-05-01T09:02:09Z",
                            "status": "completed",
                            "reason": "customer_hangup",
                        },
                        {
                            "type": "webhook_attempt",
                            "at": "2026-05-01T09:02:10Z",
                            "event_type": "call.completed",
                            "delivery_id": "dlv_123",
                            "status_code": 200,
                            "latency_ms": 41,
                        },
                    ],
                }
            ]
        }
    )

    call_id: str
    data: list[TimelineEntry]


def timeline(call: Call, deliveries: list[Delivery]) -> Timeline:
    entries = [
        TimelineEntry(type="dial_attempt", at=a.at, outcome=_DIAL_OUTCOMES[a.outcome])
        for a in call.route_attempts
    ]
    entries += _status_changes(call)
    for delivery in deliveries:
        entries += [
            TimelineEntry(
                type="webhook_attempt",
                at=attempt.at,
                event_type=delivery.event_type,
                delivery_id=delivery.delivery_id,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=attempt.error,
            )
            for attempt in delivery.attempts
        ]
    # Stable: entries of one instant keep the order they were added in.
    entries.sort(key=lambda e: e.at)
    return Timeline(call_id=call.call_id, data=entries)


def _status_changes(call: Call) -> list[TimelineEntry]:
    """The statuses the call went through, in the state machine's order. Some times are
    the provider's (when the call was answered) and some ours (when its callback came):
    each is kept at or after the one before, so clock skew never reorders them."""
    moments: list[tuple[CallStatus, datetime | None]] = [
        (CallStatus.QUEUED, call.created_at),
        (CallStatus.DIALING, call.dialed_at),
        (CallStatus.RINGING, call.ringing_at),
        (CallStatus.IN_PROGRESS, call.started_at),
    ]
    if call.status.is_terminal:
        moments.append((call.status, call.ended_at or call.updated_at))
    changes: list[TimelineEntry] = []
    for status, at in moments:
        if at is None:
            continue
        if changes and at < changes[-1].at:
            at = changes[-1].at
        reason = call.ended_reason if status.is_terminal else None
        changes.append(TimelineEntry(type="status", at=at, status=status, reason=reason))
    return changes
