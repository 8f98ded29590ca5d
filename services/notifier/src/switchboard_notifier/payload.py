"""The JSON body of a customer webhook, built from a bus event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.batches import BatchView
from switchboard_shared.domain.calls import CallView
from switchboard_shared.domain.sessions import SessionEndedData


class WebhookPayload(BaseModel):
    """What a receiver gets for a call event: the event's type and id (also the
    `webhook-id` header), when it happened, the call's `sequence` (order events of one
    call by it), and `data`: the call exactly as `GET /v1/calls/{call_id}` shows it."""

    type: str
    id: str
    created_at: datetime
    sequence: int
    data: dict[str, Any]


class SessionWebhookPayload(BaseModel):
    """What a receiver gets for `session.ended` (a session ends once: no sequence)."""

    type: str
    id: str
    created_at: datetime
    data: SessionEndedData


class UnusableEvent(ValueError):
    """An event whose data is not what its type carries: it can never be delivered."""


def build_payload(event: Event) -> str:
    """The exact body to send for `event`. Call, session and batch data go through their
    public models, so a field that is not public (a provider's, say) never leaves."""
    if event.type is EventType.SESSION_ENDED:
        try:
            data = SessionEndedData.model_validate(event.data)
        except ValidationError as exc:
            raise UnusableEvent(
                f"{event.type} {event.id} does not carry a session: {exc}"
            ) from None
        return SessionWebhookPayload(
            type=str(event.type), id=event.id, created_at=event.occurred_at, data=data
        ).model_dump_json()
    payload_data = event.data
    if event.type is EventType.BATCH_COMPLETED:
        try:
            payload_data = BatchView.model_validate(event.data).model_dump(mode="json")
        except ValidationError as exc:
            raise UnusableEvent(f"{event.type} {event.id} does not carry a batch: {exc}") from None
    elif event.type is not EventType.WEBHOOK_TEST:
        try:
            payload_data = CallView.model_validate(event.data).model_dump(mode="json")
        except ValidationError as exc:
            raise UnusableEvent(f"{event.type} {event.id} does not carry a call: {exc}") from None
    payload = WebhookPayload(
        type=str(event.type),
        id=event.id,
        created_at=event.occurred_at,
        sequence=event.sequence,
        data=payload_data,
    )
    return payload.model_dump_json()
