"""How a session ends, wherever it ends (the API's DELETE, the media edge, the timeout
sweep): the store's compare-and-set decides the one end that counts, and only that end
publishes `session.ended`. The store keeps `notify_pending` until the notifier has made
the event's deliveries, so an event lost with a crashed process or a broker outage is
sent from the store by the notifier's sweep. The event id is derived from the session
id: however many times it is published, it is one event and one delivery per URL."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.sessions import Session, SessionEndedData, SessionEndReason
from switchboard_shared.observability.metrics import MESSAGES_PUBLISHED, PUBLISH_FAILURES
from switchboard_shared.ports import Bus, PublishError, SessionStore

log = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("6b1f7c1e-5e55-4e1d-9a8e-5e551011e7d0")


def ended_event_id(session_id: str) -> str:
    """The one id of a session's `session.ended`, the same at every publish."""
    return f"evt_{uuid.uuid5(_EVENT_NAMESPACE, session_id).hex}"


def ended_event(session: Session) -> Event:
    """`session.ended` for an ended session: its data is the webhook's `data`."""
    data = SessionEndedData.of(session).model_dump(mode="json")
    return Event(
        id=ended_event_id(session.session_id),
        type=EventType.SESSION_ENDED,
        occurred_at=session.ended_at or session.updated_at,
        tenant_id=session.tenant_id,
        session_id=session.session_id,
        data=data,
    )


async def publish_ended(bus: Bus, session: Session) -> bool:
    """Publish the session's `session.ended`; False when the broker did not take it (the
    notifier's sweep sends it from the store)."""
    event = ended_event(session)
    try:
        await bus.publish(event)
    except PublishError as exc:
        PUBLISH_FAILURES.labels(event.type).inc()
        log.warning("session.ended left to the sweep: %s", exc, extra={"event": event.type})
        return False
    MESSAGES_PUBLISHED.labels(event.type).inc()
    return True


async def end_session(
    store: SessionStore,
    bus: Bus,
    session_id: str,
    reason: SessionEndReason,
    ended_at: datetime | None = None,
) -> Session | None:
    """End the session for `reason` if it is still active and announce it; None when it
    had ended already (whoever ended it first announced it)."""
    ended = await store.end_session(session_id, reason, ended_at)
    if ended is not None:
        log.info("session ended: %s", reason.value, extra={"session_id": session_id})
        await publish_ended(bus, ended)
    return ended
