"""The event envelope every message on the bus carries, and the event types."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from switchboard_shared.domain.calls import CallStatus, utcnow


class EventType(StrEnum):
    CALL_REQUESTED = "call.requested"
    CALL_CANCEL_REQUESTED = "call.cancel_requested"
    CALL_DIALING = "call.dialing"
    CALL_RINGING = "call.ringing"
    CALL_IN_PROGRESS = "call.in_progress"
    CALL_COMPLETED = "call.completed"
    SESSION_ENDED = "session.ended"
    # An attempt of a call that will be redialed ended; the call is `scheduled` again.
    CALL_ATTEMPT_ENDED = "call.attempt_ended"
    BATCH_COMPLETED = "batch.completed"
    WEBHOOK_TEST = "webhook.test"
    WEBHOOK_REPLAY_REQUESTED = "webhook.replay_requested"


# Events a customer may receive; the internal commands above them never leave the bus.
CUSTOMER_EVENT_TYPES = frozenset(
    {
        EventType.CALL_DIALING,
        EventType.CALL_RINGING,
        EventType.CALL_IN_PROGRESS,
        EventType.CALL_COMPLETED,
        EventType.SESSION_ENDED,
        EventType.CALL_ATTEMPT_ENDED,
        EventType.BATCH_COMPLETED,
        EventType.WEBHOOK_TEST,
    }
)

# The event a provider-reported status produces.
EVENT_FOR_STATUS: dict[CallStatus, EventType] = {
    CallStatus.DIALING: EventType.CALL_DIALING,
    CallStatus.RINGING: EventType.CALL_RINGING,
    CallStatus.IN_PROGRESS: EventType.CALL_IN_PROGRESS,
    **{s: EventType.CALL_COMPLETED for s in CallStatus if s.is_terminal},
    # Only ever entered again by an attempt that ended and will be redialed; a call
    # created `scheduled` publishes nothing until it is queued.
    CallStatus.SCHEDULED: EventType.CALL_ATTEMPT_ENDED,
}


class Event(BaseModel):
    """Envelope of every bus message. `id` is the dedupe key; the routing key is `type`."""

    id: str = Field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")
    type: EventType
    occurred_at: datetime = Field(default_factory=utcnow)
    tenant_id: str
    call_id: str | None = None
    session_id: str | None = None
    # Per-call, increasing: receivers can drop an older status after a newer one.
    sequence: int = 0
    data: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Event:
        return cls.model_validate_json(body)
