"""The call: its statuses, the forward-only state machine, and the customer-facing view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from switchboard_shared.domain.ended_reasons import EndedReason, error_message, read_reason


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (scheduled_at, window, redial delay)
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
    CallStatus.SCHEDULED: -1,
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
    A `scheduled` call is only queued (its time came) or canceled: nothing a provider
    reports about an earlier attempt moves it. (An attempt that ends and is redialed
    returns the call to `scheduled` in `calls/attempts.py`, outside this machine.)
    """
    if current.is_terminal:
        return False
    if current is CallStatus.SCHEDULED:
        return new in (CallStatus.QUEUED, CallStatus.CANCELED)
    return _RANK[new] > _RANK[current]


def statuses_that_may_become(new: CallStatus) -> frozenset[CallStatus]:
    """The current statuses from which `new` is allowed: the guard of a conditional update."""
    return frozenset(s for s in CallStatus if can_transition(s, new))


class RouteOutcome(StrEnum):
    ACCEPTED = "accepted"
    UNREACHABLE = "unreachable"  # failed before the provider accepted it: next route
    AMBIGUOUS = "ambiguous"  # sent, answer lost: the provider is asked before any retry
    REJECTED = "rejected"  # the provider refused the request itself (4xx)


class RouteAttempt(BaseModel):
    """One route a dialer tried for a call (internal: names a provider)."""

    route: int  # position in the agent's routes
    provider: str
    outcome: RouteOutcome
    at: datetime
    detail: str | None = None


class CallAnalysis(BaseModel):
    """What the provider's post-call analysis concluded, in one shape for every provider."""

    summary: str | None = Field(default=None, description="A short account of the call.")
    successful: bool | None = Field(
        default=None, description="Whether the call reached its goal, when the agent judged it."
    )
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Values the agent extracted from the conversation."
    )


class CallAttempt(BaseModel):
    """One dial of a call that has ended: a call redialed by its retry policy has several."""

    attempt: int = Field(description="1 for the first dial, 2 for the first redial, ...")
    status: CallStatus = Field(description="How this attempt ended (a terminal status).")
    ended_reason: EndedReason | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = Field(default=None, description="Seconds, when it was answered.")

    _read_reason = field_validator("ended_reason", mode="before")(read_reason)


def _reason(value: Any) -> EndedReason | None:
    # Stored before the taxonomy ("hangup"), or a value no longer known: read, not refused.
    return read_reason(value)


class CallFields(BaseModel):
    """Every field of a call but its identity, declared once: `Call` adds the identity
    (`call_id`, `tenant_id`, `created_at`), which never changes; `CallChanges` and
    `CallGuard` (domain/call_changes.py) name any of these, with these types."""

    agent: str
    phone: str
    status: CallStatus = CallStatus.QUEUED
    variables: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    transcript: str | None = None
    duration: int | None = None
    ended_reason: EndedReason | None = None
    outcome: str | None = None
    # A CallAnalysis as a plain document (the public view validates it back into the
    # model). Both stores now write nested models too (`stored_value`), so this could be
    # typed as CallAnalysis; kept a dict until its readers are moved over.
    analysis: dict[str, Any] | None = None
    recording_available: bool = False
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # When the call reached `dialing` (a provider accepted it) and `ringing`: the
    # timeline of `GET /v1/calls/{id}/events` (started_at and ended_at are the others).
    dialed_at: datetime | None = None
    ringing_at: datetime | None = None
    # When the first attempt was due, when the call was created `scheduled` (a
    # `scheduled_at` in the future and/or outside its calling window); None: at once.
    scheduled_at: datetime | None = None
    # A CallingWindow and a RetryPolicy (domain/scheduling.py) as plain documents: a
    # window's times are not values MongoDB can store.
    calling_window: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None
    batch_id: str | None = None  # the batch that created it
    attempt: int = 1  # the current attempt's number
    attempts: list[CallAttempt] = Field(default_factory=list)  # the attempts that ended
    # When a `scheduled` call is due: found by one index scan on (status, next_attempt_at).
    next_attempt_at: datetime | None = None

    # --- internal only ---------------------------------------------------------------
    # The slot scope (a concurrency limit) the call waits for a free slot of, and since
    # when: the dispatcher hands freed slots out oldest waiting first.
    waiting_lane: str | None = None
    waiting_since: datetime | None = None
    # A due time set aside while the call's batch is paused (next_attempt_at is then
    # None, so the dispatcher does not see it); resuming puts it back.
    held_next_attempt_at: datetime | None = None
    provider: str | None = None  # set with the dial claim: where the create went
    provider_call_id: str | None = None
    route_attempts: list[RouteAttempt] = Field(default_factory=list)
    # The provider's own code for why the call ended, for operators (never public).
    ended_reason_raw: str | None = None
    # A dialer's claim on the call for its provider request: a token for the
    # compare-and-set, and when it was taken, so a crashed dialer's claim can expire.
    dial_claim: str | None = None
    dialing_at: datetime | None = None
    # The longest this attempt may last, fixed when the dialer claims it: the agent's
    # own, else the tenant's default `max_duration` at that time.
    max_duration_seconds: int | None = None
    # When the watchdog settles the call if it is still live: set when the provider
    # accepts it (max duration + grace), so finding overdue calls is one index scan.
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

    _read_reason = field_validator("ended_reason", mode="before")(_reason)


_ATTEMPT_SEPARATOR = "-a"


def dial_reference(call_id: str, attempt: int) -> str:
    """What one attempt is known by at the provider (its reference, idempotency key and
    callback reference): the call id for the first, `<call id>-a<n>` for redials, so a
    redial is a new provider call and an earlier attempt's late callback is told apart."""
    return call_id if attempt == 1 else f"{call_id}{_ATTEMPT_SEPARATOR}{attempt}"


def read_dial_reference(reference: str) -> tuple[str, int]:
    """The (call id, attempt) a `dial_reference` names."""
    call_id, separator, attempt = reference.rpartition(_ATTEMPT_SEPARATOR)
    if separator and attempt.isdigit():
        return call_id, int(attempt)
    return reference, 1


class Call(CallFields):
    """A call as Switchboard stores it. Provider fields never leave the process."""

    call_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def dial_reference(self) -> str:
        """The current attempt's reference at the provider (`dial_reference`)."""
        return dial_reference(self.call_id, self.attempt)

    def public_view(self) -> CallView:
        return CallView.model_validate(self.model_dump(include=set(CallView.model_fields)))


class CallView(BaseModel):
    """The normalized call of `GET /v1/calls/{id}` and of every customer webhook."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
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
            ]
        }
    )

    call_id: str
    status: CallStatus
    agent: str
    phone: str
    transcript: str | None
    duration: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    ended_reason: EndedReason | None
    # Defaults: events published before these fields existed still read as a call.
    outcome: str | None = None
    analysis: CallAnalysis | None = None
    recording_available: bool = False
    variables: dict[str, Any]
    metadata: dict[str, Any]
    scheduled_at: datetime | None = None
    next_attempt_at: datetime | None = None
    attempts: list[CallAttempt] = Field(default_factory=list)
    batch_id: str | None = None

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented idiom
    @property
    def error(self) -> str | None:
        """Our own message when the call failed; null otherwise."""
        return error_message(self.status, self.ended_reason)


class CallFilter(BaseModel):
    """Filters of `GET /v1/calls`; all optional, combined with AND."""

    status: CallStatus | None = None
    agent: str | None = None
    batch_id: str | None = None
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
