"""The JSON body of a customer webhook, built from a bus event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from switchboard_shared.domain.calls import CallView
from switchboard_shared.events import Event, EventType


class WebhookPayload(BaseModel):
    """What a receiver gets: the event's type and id (also the `webhook-id` header), when
    it happened, the call's `sequence` (order events of one call by it), and `data`: the
    call exactly as `GET /v1/calls/{call_id}` shows it."""

    type: str
    id: str
    created_at: datetime
    sequence: int
    data: dict[str, Any]


class UnusableEvent(ValueError):
    """A call event whose data is not a call: it can never be delivered."""


def build_payload(event: Event) -> str:
    """The exact body to send for `event`. Call data goes through the public call view,
    so a field that is not in `GET /v1/calls/{id}` (a provider's, say) never leaves."""
    data = event.data
    if event.type is not EventType.WEBHOOK_TEST:
        try:
            data = CallView.model_validate(event.data).model_dump(mode="json")
        except ValidationError as exc:
            raise UnusableEvent(f"{event.type} {event.id} does not carry a call: {exc}") from None
    payload = WebhookPayload(
        type=str(event.type),
        id=event.id,
        created_at=event.occurred_at,
        sequence=event.sequence,
        data=data,
    )
    return payload.model_dump_json()
