"""Call state changes and the events they produce, published at least once.

Every change goes through `transition` (or `Store.insert_call` for a new call): the
store bumps the call's `sequence` and sets `publish_pending` in the same atomic write,
then the event for that sequence is published. If the broker is down, or the process
dies before the publish is confirmed, `OutboxRelay` publishes it later. Event ids are
derived from (call_id, sequence), so a republished event is the same event and
consumers drop it as a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from switchboard_shared.domain.calls import Call, CallStatus, statuses_that_may_become, utcnow
from switchboard_shared.events import EVENT_FOR_STATUS, Event, EventType
from switchboard_shared.metrics import (
    CALLS_ENDED,
    MESSAGES_PUBLISHED,
    OUTBOX_REPUBLISHED,
    PUBLISH_FAILURES,
)
from switchboard_shared.ports import Bus, PublishError, Store

log = logging.getLogger(__name__)


def event_id(call_id: str, sequence: int) -> str:
    return f"evt_{call_id.replace('-', '')}_{sequence}"


def event_for(call: Call) -> Event:
    """The event announcing the call's current state (its latest sequence)."""
    event_type = (
        EventType.CALL_REQUESTED
        if call.status is CallStatus.QUEUED
        else EVENT_FOR_STATUS[call.status]
    )
    return Event(
        id=event_id(call.call_id, call.sequence),
        type=event_type,
        occurred_at=call.updated_at,
        tenant_id=call.tenant_id,
        call_id=call.call_id,
        sequence=call.sequence,
        data=call.public_view().model_dump(mode="json"),
    )


async def publish_call_event(store: Store, bus: Bus, call: Call) -> bool:
    """Publish the event for `call.sequence` and clear its pending flag.

    Returns False when the broker did not confirm: the event stays pending for the relay.
    """
    event = event_for(call)
    try:
        await bus.publish(event)
    except PublishError as exc:
        PUBLISH_FAILURES.labels(event.type).inc()
        log.warning(
            "event left in the outbox: %s",
            exc,
            extra={"call_id": call.call_id, "event": event.type},
        )
        return False
    MESSAGES_PUBLISHED.labels(event.type).inc()
    await store.mark_published(call.call_id, call.sequence)
    return True


async def transition(
    store: Store,
    bus: Bus,
    call_id: str,
    new_status: CallStatus,
    changes: Mapping[str, Any] | None = None,
    *,
    expected: Mapping[str, Any] | None = None,
) -> Call | None:
    """Move the call to `new_status` if the state machine allows it, store `changes`
    with it, and publish the event. Returns None (and publishes nothing) when the call
    does not exist or the transition is not allowed: a late or duplicate update."""
    fields: dict[str, Any] = {**(changes or {}), "status": new_status}
    if new_status.is_terminal:
        fields.setdefault("ended_at", utcnow())
        # The completion must reach the customer even if its event is lost on the way:
        # the notifier clears this once it made the deliveries, a sweep finds the rest.
        fields["notify_pending"] = True
        fields["watchdog_deadline"] = None
    updated = await store.update_call(
        call_id,
        fields,
        expected_statuses=statuses_that_may_become(new_status),
        expected=expected,
        bump_sequence=True,
    )
    if updated is None:
        return None
    if new_status.is_terminal:
        CALLS_ENDED.labels(new_status).inc()
    await publish_call_event(store, bus, updated)
    return updated


class OutboxRelay:
    """Publishes events whose publish was not confirmed.

    Only calls whose pending event is older than `min_age` are taken, so the relay does
    not race the request that is publishing right now. Run it with `PeriodicTask`.
    """

    def __init__(self, store: Store, bus: Bus, *, min_age: float) -> None:
        self._store = store
        self._bus = bus
        self._min_age = min_age

    async def run_once(self) -> int:
        """Publish what is pending; returns how many events were confirmed."""
        pending = await self._store.find_calls(
            publish_pending=True, updated_before=utcnow() - timedelta(seconds=self._min_age)
        )
        published = 0
        for call in pending:
            if not await publish_call_event(self._store, self._bus, call):
                break  # the broker is still down; try again next round
            OUTBOX_REPUBLISHED.inc()
            published += 1
        return published
