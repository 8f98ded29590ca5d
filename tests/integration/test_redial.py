"""Attempts and redials on both stores: an attempt the retry policy covers returns the
call to `scheduled` (a `call.attempt_ended` event), the last one ends it (one
`call.completed`), and the dispatcher queues what came due, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from switchboard_dialer.dispatch import CallDispatcher
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls.events import EventType
from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import DEFAULT_FOR_STATUS
from switchboard_shared.ports import Store
from tests.support.pipeline_parts import EventLog, observed_bus
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(60)

RETRY = {"on": ["no_answer", "busy"], "max_attempts": 3, "delay_seconds": 600}


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started


@pytest.fixture
async def bus_and_log() -> AsyncIterator[tuple[InProcessBus, EventLog]]:
    async with observed_bus() as (bus, log):
        yield bus, log


async def new_call(store: Store, **fields: Any) -> Call:
    call, _ = await store.insert_call(
        Call(tenant_id="tenant-1", agent="sim-agent", phone="+996700000000", **fields), 3600
    )
    return call


async def dial_and_end(
    store: Store, bus: InProcessBus, call: Call, ended_as: CallStatus
) -> Call | None:
    """One attempt: dialed, then ended by the provider as `ended_as`."""
    dialed = await transition(
        store,
        bus,
        call.call_id,
        CallStatus.DIALING,
        CallChanges(provider="simulator", provider_call_id=f"sim-{call.attempt}"),
    )
    assert dialed is not None
    return await transition(
        store,
        bus,
        call.call_id,
        ended_as,
        CallChanges(ended_reason=DEFAULT_FOR_STATUS[ended_as], duration=0),
    )


async def test_an_attempt_the_policy_covers_is_redialed_after_its_delay(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(store, retry=RETRY)
    before = utcnow()
    ended = await dial_and_end(store, bus, call, CallStatus.NO_ANSWER)

    assert ended is not None
    assert ended.status is CallStatus.SCHEDULED
    assert ended.attempt == 2
    [first] = ended.attempts
    assert (first.attempt, first.status, first.ended_reason) == (
        1,
        CallStatus.NO_ANSWER,
        "dial_no_answer",
    )
    assert ended.next_attempt_at is not None
    assert before + timedelta(seconds=600) <= ended.next_attempt_at
    assert ended.next_attempt_at <= utcnow() + timedelta(seconds=601)
    # The dial's fields are gone; the customer is owed no completion yet.
    assert (ended.provider_call_id, ended.ended_at, ended.notify_pending) == (None, None, False)
    [event] = await log.wait_for(call.call_id, EventType.CALL_ATTEMPT_ENDED)
    assert event.data["status"] == "scheduled"
    assert event.data["attempts"][0]["status"] == "no_answer"
    assert log.of(call.call_id, EventType.CALL_COMPLETED) == []


async def test_the_last_attempt_ends_the_call_with_one_completion(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(store, retry=RETRY)
    dispatcher = CallDispatcher(store, bus)
    for ended_as in (CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.NO_ANSWER):
        current = await store.get_call(call.call_id)
        assert current is not None
        if current.status is CallStatus.SCHEDULED:
            # Its delay is over: due now.
            await store.update_call(call.call_id, CallChanges(next_attempt_at=utcnow()))
            assert await dispatcher.run_once() == 1
            current = await store.get_call(call.call_id)
            assert current is not None
        assert current.status is CallStatus.QUEUED
        await dial_and_end(store, bus, current, ended_as)

    final = await store.get_call(call.call_id)
    assert final is not None
    assert final.status is CallStatus.NO_ANSWER
    assert [(a.attempt, a.status) for a in final.attempts] == [
        (1, CallStatus.NO_ANSWER),
        (2, CallStatus.BUSY),
        (3, CallStatus.NO_ANSWER),
    ]
    assert (final.next_attempt_at, final.notify_pending) == (None, True)
    [completed] = await log.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert len(completed.data["attempts"]) == 3
    # One `call.attempt_ended` per attempt, the final one included, just before the one
    # `call.completed`.
    ended = log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED)
    assert [len(e.data["attempts"]) for e in ended] == [1, 2, 3]
    assert [e.data["status"] for e in ended] == ["scheduled", "scheduled", "no_answer"]
    assert len({e.id for e in ended}) == 3
    assert ended[-1].sequence == completed.sequence
    terminal = log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED, EventType.CALL_COMPLETED)
    assert [e.type for e in terminal[-2:]] == [
        EventType.CALL_ATTEMPT_ENDED,
        EventType.CALL_COMPLETED,
    ]
    assert len(log.of(call.call_id, EventType.CALL_REQUESTED)) == 2  # the redials


async def test_an_outcome_the_policy_does_not_cover_ends_the_call(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(store, retry=RETRY)
    ended = await dial_and_end(store, bus, call, CallStatus.FAILED)
    assert ended is not None
    assert ended.status is CallStatus.FAILED
    assert [a.status for a in ended.attempts] == [CallStatus.FAILED]
    await log.wait_for(call.call_id, EventType.CALL_COMPLETED)


async def test_a_hang_up_requested_stops_further_attempts(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, _ = bus_and_log
    call = await new_call(store, retry=RETRY, cancel_requested=True)
    ended = await dial_and_end(store, bus, call, CallStatus.NO_ANSWER)
    assert ended is not None
    assert ended.status is CallStatus.NO_ANSWER


async def test_canceling_a_scheduled_call_records_no_attempt(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(
        store,
        status=CallStatus.SCHEDULED,
        next_attempt_at=utcnow() + timedelta(hours=1),
        publish_pending=False,
        retry=RETRY,
    )
    canceled = await transition(store, bus, call.call_id, CallStatus.CANCELED)
    assert canceled is not None
    assert (canceled.status, canceled.attempts, canceled.next_attempt_at) == (
        CallStatus.CANCELED,
        [],
        None,
    )
    await log.wait_for(call.call_id, EventType.CALL_COMPLETED)
    # Never dialed: no attempt, so no `call.attempt_ended`.
    assert log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED) == []


async def test_a_call_without_a_policy_has_one_attempt_ended_before_its_completion(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(store)
    await dial_and_end(store, bus, call, CallStatus.BUSY)
    await log.wait_for(call.call_id, EventType.CALL_COMPLETED)
    ends = log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED, EventType.CALL_COMPLETED)
    assert [(e.type, e.data["status"]) for e in ends] == [
        (EventType.CALL_ATTEMPT_ENDED, "busy"),
        (EventType.CALL_COMPLETED, "busy"),
    ]


async def test_canceling_a_call_waiting_for_its_redial_adds_no_attempt_ended(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    call = await new_call(store, retry=RETRY)
    waiting = await dial_and_end(store, bus, call, CallStatus.NO_ANSWER)
    assert waiting is not None
    assert waiting.status is CallStatus.SCHEDULED
    canceled = await transition(store, bus, call.call_id, CallStatus.CANCELED)
    assert canceled is not None
    assert len(canceled.attempts) == 1
    await log.wait_for(call.call_id, EventType.CALL_COMPLETED)
    # The one attempt made has its one `call.attempt_ended`; the redial never happened.
    [ended] = log.of(call.call_id, EventType.CALL_ATTEMPT_ENDED)
    assert ended.data["status"] == "scheduled"


async def test_a_late_callback_of_an_earlier_attempt_does_not_move_a_scheduled_call(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, _ = bus_and_log
    call = await new_call(store, retry=RETRY)
    await dial_and_end(store, bus, call, CallStatus.NO_ANSWER)
    for late in (CallStatus.RINGING, CallStatus.IN_PROGRESS, CallStatus.COMPLETED):
        assert await transition(store, bus, call.call_id, late) is None
    stored = await store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.SCHEDULED


async def test_the_dispatcher_queues_only_what_is_due_and_each_call_once(
    store: Store, bus_and_log: tuple[InProcessBus, EventLog]
) -> None:
    bus, log = bus_and_log
    now = utcnow()
    due = [
        await new_call(
            store,
            status=CallStatus.SCHEDULED,
            next_attempt_at=now - timedelta(seconds=i),
            publish_pending=False,
        )
        for i in range(30)
    ]
    later = await new_call(
        store,
        status=CallStatus.SCHEDULED,
        next_attempt_at=now + timedelta(hours=1),
        publish_pending=False,
    )
    # Two dispatchers (two dialer replicas) at once, with small batches.
    dispatchers = [CallDispatcher(store, bus, batch_size=7) for _ in range(2)]
    counts = await asyncio.gather(*(d.run_once() for d in dispatchers))
    assert sum(counts) == len(due)

    for call in due:
        stored = await store.get_call(call.call_id)
        assert stored is not None
        assert (stored.status, stored.next_attempt_at) == (CallStatus.QUEUED, None)
        [requested] = await log.wait_for(call.call_id, EventType.CALL_REQUESTED)
        assert requested.sequence == 2
    waiting = await store.get_call(later.call_id)
    assert waiting is not None
    assert waiting.status is CallStatus.SCHEDULED
    assert log.of(later.call_id) == []
