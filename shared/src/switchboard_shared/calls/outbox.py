"""Call state changes and the events they produce, published at least once.

Every change goes through `transition` (or `Store.insert_call` for a new call): the
store bumps the call's `sequence` and sets `publish_pending` in the same atomic write,
then the event for that sequence is published. If the broker is down, or the process
dies before the publish is confirmed, `OutboxRelay` publishes it later. Event ids are
derived from (call_id, sequence), so a republished event is the same event and
consumers drop it as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import timedelta

from switchboard_shared.calls.attempts import attempt_end_changes
from switchboard_shared.calls.events import EVENT_FOR_STATUS, Event, EventType
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, statuses_that_may_become, utcnow
from switchboard_shared.observability.metrics import (
    CALLS_CREATED_TO_ENDED_SECONDS,
    CALLS_ENDED,
    MESSAGES_PUBLISHED,
    OUTBOX_LEFT_TO_RELAY,
    OUTBOX_REPUBLISHED,
    PUBLISH_FAILURES,
    REDIALS_SCHEDULED,
)
from switchboard_shared.ports import Bus, CallStore, PublishError

log = logging.getLogger(__name__)

# Rounds of read-then-write when ending an attempt; a race settles within a few.
_END_ROUNDS = 4


def event_id(call_id: str, sequence: int) -> str:
    return f"evt_{call_id.replace('-', '')}_{sequence}"


def final_attempt_event_id(call_id: str, sequence: int) -> str:
    """The id of the final attempt's `call.attempt_ended`, published with (and derived
    from the same sequence as) the call's `call.completed`."""
    return f"{event_id(call_id, sequence)}_attempt"


def events_for(call: Call) -> list[Event]:
    """The events announcing the call's current state, in publishing order: its event
    (`event_for`), preceded, when that is the `call.completed` of a call whose final
    attempt was made, by that attempt's `call.attempt_ended`, so every attempt has one."""
    event = event_for(call)
    final_attempt_recorded = len(call.attempts) == call.attempt and call.attempts
    if event.type is not EventType.CALL_COMPLETED or not final_attempt_recorded:
        return [event]
    attempt_ended = event.model_copy(
        update={
            "id": final_attempt_event_id(call.call_id, call.sequence),
            "type": EventType.CALL_ATTEMPT_ENDED,
        }
    )
    return [attempt_ended, event]


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


async def publish_call_event(store: CallStore, bus: Bus, call: Call) -> bool:
    """Publish the events for `call.sequence` (`events_for`) and clear its pending flag.

    Returns False when the broker did not confirm one: the sequence stays pending for the
    relay, which publishes them all again (the same ids: receivers drop the repeat).
    """
    if not await _publish_events(bus, call):
        return False
    await store.mark_published([(call.call_id, call.sequence)])
    return True


async def _publish_events(bus: Bus, call: Call) -> bool:
    for event in events_for(call):
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
    return True


class DeferredPublisher:
    """Publishes the events of calls just stored, once their request has been answered.

    A call is stored with its event pending (`publish_pending`) before the 201, so the
    event is never lost: this publishes it milliseconds later, many calls at a time (their
    confirms pipelined on the channel, one store write clearing their flags), and the
    relay publishes whatever a broker outage or a killed process left pending. The
    request path waits neither for the broker's confirm nor for that second write.

    The publishing task starts on the first `submit` and ends when nothing waits, so the
    publisher needs no start; `flush` (at shutdown) waits until what was submitted is
    published or left to the relay.
    """

    def __init__(
        self,
        store: CallStore,
        bus: Bus,
        *,
        max_waiting: int = 10_000,
        batch_size: int = 100,
        flush_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._max_waiting = max_waiting
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._waiting: deque[Call] = deque()
        self._task: asyncio.Task[None] | None = None

    def submit(self, call: Call) -> None:
        """Publish `call`'s pending events soon; beyond `max_waiting` calls waiting (the
        broker slow or away), they are left to the relay."""
        if len(self._waiting) >= self._max_waiting:
            OUTBOX_LEFT_TO_RELAY.inc()
            return
        self._waiting.append(call)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._publish_waiting(), name="deferred-publisher"
            )

    async def flush(self) -> None:
        """Wait until every call submitted so far is published (or left to the relay);
        after `flush_seconds` (a broker too slow to confirm) stop, leaving the rest to
        the relay: a drain must not outlast the grace period for events that are safe."""
        try:
            async with asyncio.timeout(self._flush_seconds):
                while self._task is not None and not self._task.done():
                    await asyncio.shield(self._task)
        except TimeoutError:
            log.warning("%d calls' events left to the outbox relay", len(self._waiting))
            self._waiting.clear()
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    async def _publish_waiting(self) -> None:
        while self._waiting:
            batch = [
                self._waiting.popleft() for _ in range(min(self._batch_size, len(self._waiting)))
            ]
            try:
                confirmed = await asyncio.gather(*(_publish_events(self._bus, c) for c in batch))
                await self._store.mark_published(
                    [(c.call_id, c.sequence) for c, ok in zip(batch, confirmed, strict=True) if ok]
                )
            except Exception:
                # Still pending in the store: the relay publishes them (the same ids).
                log.exception("deferred publish of %d calls failed", len(batch))


async def transition(
    store: CallStore,
    bus: Bus,
    call_id: str,
    new_status: CallStatus,
    changes: CallChanges | None = None,
    *,
    guard: CallGuard | None = None,
) -> Call | None:
    """Move the call to `new_status` if the state machine allows it (and `guard` holds),
    store `changes` with it, and publish the event. Returns None (and publishes nothing)
    when the call does not exist or the transition is not allowed: a late or duplicate
    update.

    A terminal `new_status` ends the current attempt (`calls/attempts.py`): the call
    either ends, or its retry policy returns it to `scheduled` for a redial."""
    fields = (changes or CallChanges()).plus(CallChanges(status=new_status))
    allowed = (guard or CallGuard()).requiring(statuses_that_may_become(new_status))
    if new_status.is_terminal:
        return await _end_attempt(store, bus, call_id, new_status, fields, allowed)
    updated = await store.update_call(call_id, fields, guard=allowed, bump_sequence=True)
    if updated is not None:
        await publish_call_event(store, bus, updated)
    return updated


async def _end_attempt(
    store: CallStore,
    bus: Bus,
    call_id: str,
    new_status: CallStatus,
    fields: CallChanges,
    allowed: CallGuard,
) -> Call | None:
    # An `ended_at` given is kept. The completion must reach the customer even if its
    # event is lost on the way: the notifier clears `notify_pending` once it made the
    # deliveries, a sweep finds the rest.
    ended = (
        CallChanges(ended_at=utcnow())
        .plus(fields)
        # A call leaving `queued` waits for no slot any longer.
        .plus(
            CallChanges(
                notify_pending=True, watchdog_deadline=None, waiting_lane=None, waiting_since=None
            )
        )
    )
    for _ in range(_END_ROUNDS):
        current = await store.get_call(call_id)
        if current is None or current.status not in (allowed.statuses or frozenset()):
            return None
        status, write = attempt_end_changes(current, new_status, ended)
        # The attempts are read, then written: the sequence proves nobody moved the call
        # in between (every state change bumps it).
        updated = await store.update_call(
            call_id,
            write,
            guard=allowed.plus_equal(sequence=current.sequence),
            bump_sequence=True,
        )
        if updated is None:
            continue  # moved under us, or the guard does not hold: look again
        if status is CallStatus.SCHEDULED:
            REDIALS_SCHEDULED.labels(new_status).inc()
        if status.is_terminal:
            CALLS_ENDED.labels(status).inc()
            if updated.ended_at is not None:
                elapsed = (updated.ended_at - updated.created_at).total_seconds()
                CALLS_CREATED_TO_ENDED_SECONDS.labels(status).observe(max(elapsed, 0.0))
        await publish_call_event(store, bus, updated)
        return updated
    return None


class OutboxRelay:
    """Publishes events whose publish was not confirmed.

    Only calls whose pending event is older than `min_age` are taken, so the relay does
    not race the request that is publishing right now. Run it with `PeriodicTask`.
    """

    def __init__(self, store: CallStore, bus: Bus, *, min_age: float) -> None:
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
