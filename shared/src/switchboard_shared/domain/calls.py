"""The call: its statuses, the forward-only state machine, and the customer-facing view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallStatus(StrEnum):
    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.FAILED,
        CallStatus.NO_ANSWER,
        CallStatus.BUSY,
        CallStatus.CANCELED,
    }
)
# Placed with a provider and not yet ended: what a hang-up or the watchdog acts on.
LIVE_STATUSES = frozenset({CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS})

# Progress order; every terminal status shares the last rank.
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.DIALING: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    **dict.fromkeys(TERMINAL_STATUSES, 4),
}


def can_transition(current: CallStatus, new: CallStatus) -> bool:
    """Statuses only move forward; a terminal status is final.

    A late `ringing` after `in_progress`, a repeat of the current status and a second
    terminal status are all refused, so duplicate and out-of-order callbacks are no-ops.
    """
    if current.is_terminal:
        return False
    return _RANK[new] > _RANK[current]


def statuses_that_may_become(new: CallStatus) -> frozenset[CallStatus]:
    """The current statuses from which `new` is allowed: the guard of a conditional update."""
    return frozenset(s for s in CallStatus if can_transition(s, new))


class Call(BaseModel):
    """A call as Switchboard stores it. Provider fields never leave the process."""

    call_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str
    agent: str
    phone: str
    status: CallStatus = CallStatus.QUEUED
    variables: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    transcript: str | None = None
    duration: int | None = None
    ended_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    # --- internal only ---------------------------------------------------------------
    provider: str | None = None
    provider_call_id: str | None = None
    # A dialer's claim on the call for its provider request: a token for the
    # compare-and-set, and when it was taken, so a crashed dialer's claim can expire.
    dial_claim: str | None = None
    dialing_at: datetime | None = None
    # When the watchdog settles the call if it is still live: set when the provider
    # accepts it (agent max duration + grace), so finding overdue calls is one index scan.
    watchdog_deadline: datetime | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    # Transactional outbox in the call itself: every state change bumps `sequence` and
    # sets `publish_pending` in the same write; the event for that sequence is published
    # afterwards and `publish_pending` cleared. The relay republishes what stayed pending.
    # A new call starts at sequence 1 (its `call.requested`) with publish pending.
    sequence: int = 1
    publish_pending: bool = True
    cancel_requested: bool = False
    # Set in the write that makes the call terminal, cleared by the notifier once the
    # call's `call.completed` produced its deliveries: a sweep finds completions whose
    # event was lost on the way and delivers them from the store.
    notify_pending: bool = False
    # W3C trace context of the request that created the call: provider callbacks arrive
    # without our trace headers, and rejoin the call's trace through it.
    trace_context: dict[str, str] = Field(default_factory=dict)

    def public_view(self) -> CallView:
        return CallView.model_validate(self.model_dump(include=set(CallView.model_fields)))


class CallView(BaseModel):
    """The normalized call of `GET /v1/calls/{id}` and of every customer webhook."""

    call_id: str
    status: CallStatus
    agent: str
    phone: str
    transcript: str | None
    duration: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    ended_reason: str | None
    variables: dict[str, Any]
    metadata: dict[str, Any]


class CallFilter(BaseModel):
    """Filters of `GET /v1/calls`; all optional, combined with AND."""

    status: CallStatus | None = None
    agent: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class CallPage(BaseModel):
    calls: list[Call]
    next_cursor: str | None


class Usage(BaseModel):
    total_calls: int
    total_seconds: int
    active_calls: int
    by_status: dict[str, int]
