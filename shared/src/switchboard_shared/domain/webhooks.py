"""Customer webhook endpoints and the delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from switchboard_shared.domain.calls import utcnow

# What a new endpoint receives: the end of every call and of every session.
DEFAULT_WEBHOOK_EVENTS = ["call.completed", "session.ended"]


class WebhookEndpoint(BaseModel):
    """The tenant's webhook settings and signing secret. `url` is None when the tenant only
    uses per-call `webhook_url`s: those are signed with this secret too."""

    tenant_id: str
    url: str | None
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    secret: str
    # Kept during a rotation window so receivers can move to the new secret.
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryAttempt(BaseModel):
    at: datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    response_body: str | None = None


class Delivery(BaseModel):
    """One event sent to one URL. Unique by (event_id, url).

    The store, not the broker, schedules its attempts: while `pending`, the next one is
    due at `next_attempt_at` (a notifier making an attempt holds it by moving that time
    to the end of a lease, so a notifier that dies mid-attempt only delays it).
    `schedule_attempts` counts the attempts of the current schedule, which a replay
    restarts; `attempts` keeps every one.
    """

    delivery_id: str = Field(default_factory=lambda: f"dlv_{uuid.uuid4().hex}")
    tenant_id: str
    event_id: str
    event_type: str
    call_id: str | None = None
    url: str
    payload: str  # the exact JSON body sent, so replays are byte-identical
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    # When the next attempt is due; None once delivered or failed (and on deliveries
    # written before the store scheduled retries).
    next_attempt_at: datetime | None = None
    schedule_attempts: int = 0
    # The request time of the replay that started the current schedule; None when the
    # event itself started it.
    replayed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryFilter(BaseModel):
    call_id: str | None = None
    event_id: str | None = None
    status: DeliveryStatus | None = None
    event_type: str | None = None


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    next_cursor: str | None
