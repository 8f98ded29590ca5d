"""The outbox: a state change is stored even when the broker is down, and the relay
publishes the event for the call's current state later, under its deterministic id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.calls.outbox import (
    DeferredPublisher,
    OutboxRelay,
    event_id,
    publish_call_event,
    transition,
)
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.ports import PublishError, Store, Subscription
from tests.support.net import eventually
from tests.support.pipeline_parts import EventLog, observed_bus, queued_call, store_with_agents

pytestmark = pytest.mark.timeout(30)


class BreakableBus:
    """The in-process bus behind a broker that can go down: while `down`, every publish
    raises PublishError, as an unconfirmed publish does."""

    def __init__(self, inner: InProcessBus) -> None:
        self._inner = inner
        self.down = False

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        if self.down:
            raise PublishError("broker unreachable")
        await self._inner.publish(event, headers)

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def ping(self) -> None:
        if self.down:
            raise PublishError("broker unreachable")

    async def subscribe(self, subscription: Subscription) -> None:
        await self._inner.subscribe(subscription)

    async def stop_consuming(self) -> None:
        await self._inner.stop_consuming()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with store_with_agents(tmp_path) as store:
        yield store


@pytest.fixture
async def bus_and_log() -> AsyncIterator[tuple[BreakableBus, EventLog]]:
    async with observed_bus() as (bus, log):
        yield BreakableBus(bus), log


async def pending(store: Store, call_id: str) -> Call:
    call = await store.get_call(call_id)
    assert call is not None
    return call


async def dialing(store: Store, bus: BreakableBus, call_id: str) -> Call | None:
    return await transition(
        store,
        bus,
        call_id,
        CallStatus.DIALING,
        CallChanges(provider="simulator", provider_call_id=f"sim_{call_id[:8]}"),
    )


async def test_a_change_made_while_the_broker_is_down_is_relayed_later(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await queued_call(store)
    assert await publish_call_event(store, bus, call)  # the API's call.requested
    assert not (await pending(store, call.call_id)).publish_pending
    relay = OutboxRelay(store, bus, min_age=0)

    bus.down = True
    moved = await dialing(store, bus, call.call_id)

    # The change is stored, its event is owed.
    assert moved is not None
    stored = await pending(store, call.call_id)
    assert stored.status is CallStatus.DIALING
    assert stored.provider_call_id == f"sim_{call.call_id[:8]}"
    assert (stored.sequence, stored.publish_pending) == (2, True)
    assert await relay.run_once() == 0  # still down: nothing confirmed, nothing cleared
    assert (await pending(store, call.call_id)).publish_pending

    bus.down = False
    assert await eventually(relay.run_once) == 1

    [event] = await log.wait_for(call.call_id, EventType.CALL_DIALING)
    assert event.id == event_id(call.call_id, 2)
    assert event.sequence == 2
    assert event.tenant_id == call.tenant_id
    assert event.data["status"] == "dialing"
    assert "provider_call_id" not in event.data
    assert not (await pending(store, call.call_id)).publish_pending
    # Nothing owed any more: another round publishes nothing.
    assert await relay.run_once() == 0
    assert [e.type for e in log.of(call.call_id)] == [
        EventType.CALL_REQUESTED,
        EventType.CALL_DIALING,
    ]


async def test_the_relay_publishes_the_event_of_the_calls_current_state(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await queued_call(store)
    bus.down = True
    await dialing(store, bus, call.call_id)
    await transition(store, bus, call.call_id, CallStatus.RINGING)
    latest = await transition(store, bus, call.call_id, CallStatus.IN_PROGRESS)
    assert latest is not None
    assert latest.sequence == 4

    bus.down = False
    assert await eventually(OutboxRelay(store, bus, min_age=0).run_once) == 1

    [event] = await log.wait_for(call.call_id, EventType.CALL_IN_PROGRESS)
    assert event.id == event_id(call.call_id, 4)
    assert event.sequence == 4
    assert [e.type for e in log.of(call.call_id)] == [EventType.CALL_IN_PROGRESS]
    assert not (await pending(store, call.call_id)).publish_pending


async def test_a_call_whose_call_requested_was_never_published_is_relayed(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    """The API stored the call and died before publishing: the relay requests the dial."""
    bus, log = bus_and_log
    call = await queued_call(store)

    assert await eventually(OutboxRelay(store, bus, min_age=0).run_once) == 1

    [event] = await log.wait_for(call.call_id, EventType.CALL_REQUESTED)
    assert event.id == event_id(call.call_id, 1)
    assert event.data["status"] == "queued"
    assert not (await pending(store, call.call_id)).publish_pending


async def test_the_relay_leaves_events_younger_than_min_age(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await queued_call(store)
    await publish_call_event(store, bus, call)
    bus.down = True
    await dialing(store, bus, call.call_id)
    bus.down = False
    relay = OutboxRelay(store, bus, min_age=60)

    # The request that made the change may be publishing right now: not the relay's yet.
    assert await relay.run_once() == 0
    assert (await pending(store, call.call_id)).publish_pending

    # A minute on, it is.
    aged = await store.update_call(
        call.call_id, CallChanges(updated_at=utcnow() - timedelta(minutes=2))
    )
    assert aged is not None
    assert aged.publish_pending
    assert await relay.run_once() == 1
    [event] = await log.wait_for(call.call_id, EventType.CALL_DIALING)
    assert event.id == event_id(call.call_id, 2)


async def test_a_late_confirmation_of_an_older_event_leaves_the_newer_one_owed(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await queued_call(store)
    bus.down = True
    older = await dialing(store, bus, call.call_id)
    newer = await transition(store, bus, call.call_id, CallStatus.RINGING)
    assert older is not None
    assert newer is not None
    bus.down = False

    # The dialing event's publish is confirmed only now, after the call moved on.
    assert await publish_call_event(store, bus, older)

    assert (await pending(store, call.call_id)).publish_pending
    assert await eventually(OutboxRelay(store, bus, min_age=0).run_once) == 1
    [event] = await log.wait_for(call.call_id, EventType.CALL_RINGING)
    assert event.id == event_id(call.call_id, newer.sequence)
    assert not (await pending(store, call.call_id)).publish_pending


async def test_the_relay_stops_at_the_first_unconfirmed_publish_and_loses_nothing(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    calls = [await queued_call(store) for _ in range(3)]
    relay = OutboxRelay(store, bus, min_age=0)

    bus.down = True
    assert await relay.run_once() == 0
    for call in calls:
        assert (await pending(store, call.call_id)).publish_pending

    bus.down = False
    published = 0

    async def all_published() -> bool:
        # A call changed within the current millisecond is not yet older than min_age=0:
        # it may take a second round.
        nonlocal published
        published += await relay.run_once()
        return published >= 3

    await eventually(all_published)
    assert published == 3
    for call in calls:
        [event] = await log.wait_for(call.call_id, EventType.CALL_REQUESTED)
        assert event.id == event_id(call.call_id, 1)
        assert not (await pending(store, call.call_id)).publish_pending


class FailingOnCompletion(BreakableBus):
    """Confirms every publish but `call.completed` while `down`: the final attempt's
    `call.attempt_ended` went out, its completion did not."""

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        if self.down and event.type is EventType.CALL_COMPLETED:
            raise PublishError("broker unreachable")
        await self._inner.publish(event, headers)


async def test_a_final_attempt_whose_completion_was_not_confirmed_is_relayed_whole(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    _, log = bus_and_log
    bus = FailingOnCompletion(bus_and_log[0]._inner)
    call = await queued_call(store)
    await dialing(store, bus, call.call_id)
    bus.down = True
    ended = await transition(store, bus, call.call_id, CallStatus.NO_ANSWER)
    assert ended is not None
    assert (await pending(store, call.call_id)).publish_pending
    [first] = await log.wait_for(call.call_id, EventType.CALL_ATTEMPT_ENDED)

    bus.down = False
    assert await eventually(OutboxRelay(store, bus, min_age=0).run_once) == 1
    [completed] = await log.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert completed.id == event_id(call.call_id, ended.sequence)
    # The relay sent the pair again: the attempt's event under the same id (a repeat
    # receivers drop), so the customer still sees one per attempt.
    again = log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED)
    assert [e.id for e in again] == [first.id, first.id]
    assert first.data["status"] == "no_answer"
    assert len(first.data["attempts"]) == 1
    assert not (await pending(store, call.call_id)).publish_pending


# --- the API's deferred publish ----------------------------------------------------------


async def test_the_deferred_publisher_publishes_each_submitted_call_once_and_clears_it(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    publisher = DeferredPublisher(store, bus, batch_size=7)
    calls = [await queued_call(store, phone=f"+99670000{i:04d}") for i in range(30)]
    for call in calls:
        publisher.submit(call)
    await publisher.flush()

    for call in calls:
        assert not (await pending(store, call.call_id)).publish_pending
    await eventually(lambda: _has(log, len(calls)))
    assert sorted(e.id for e in log.events) == sorted(event_id(c.call_id, 1) for c in calls)
    assert {e.type for e in log.events} == {EventType.CALL_REQUESTED}


async def test_what_the_deferred_publisher_could_not_publish_stays_for_the_relay(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, log = bus_and_log
    publisher = DeferredPublisher(store, bus, max_waiting=2)
    calls = [await queued_call(store, phone=f"+99670001{i:04d}") for i in range(3)]
    left = REGISTRY.get_sample_value("switchboard_outbox_left_to_relay_total") or 0
    bus.down = True
    for call in calls:  # no await between: the third finds two waiting and is not queued
        publisher.submit(call)
    await publisher.flush()

    assert REGISTRY.get_sample_value("switchboard_outbox_left_to_relay_total") == left + 1
    for call in calls:
        assert (await pending(store, call.call_id)).publish_pending
    assert log.events == []

    bus.down = False
    assert await OutboxRelay(store, bus, min_age=0).run_once() == 3
    await eventually(lambda: _has(log, 3))
    assert sorted(e.id for e in log.events) == sorted(event_id(c.call_id, 1) for c in calls)


async def _has(log: EventLog, count: int) -> bool:
    return len(log.events) >= count


async def test_a_flush_that_the_broker_does_not_confirm_in_time_leaves_the_rest_to_the_relay(
    store: Store, bus_and_log: tuple[BreakableBus, EventLog]
) -> None:
    bus, _ = bus_and_log
    confirms = asyncio.Event()  # never set: the broker takes every publish, confirms none

    class SlowBus(BreakableBus):
        async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
            await confirms.wait()

    publisher = DeferredPublisher(store, SlowBus(bus._inner), flush_seconds=0.5)
    calls = [await queued_call(store, phone=f"+99670002{i:04d}") for i in range(3)]
    for call in calls:
        publisher.submit(call)
    started = asyncio.get_running_loop().time()
    await publisher.flush()
    assert asyncio.get_running_loop().time() - started < 5
    for call in calls:
        assert (await pending(store, call.call_id)).publish_pending
    assert await OutboxRelay(store, bus, min_age=0).run_once() == 3
