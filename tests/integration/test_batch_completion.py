"""`batch.completed` on both stores: published once, only when every call of the batch
is terminal, with the batch's final counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_dialer.batch_completion import BatchCompletion, batch_event_id
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.batches import Batch, BatchCall
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.ports import MessageContext, Store, Subscription
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started


@pytest.fixture
async def bus_and_events() -> AsyncIterator[tuple[InProcessBus, list[Event]]]:
    bus = InProcessBus(close_timeout=2)
    await bus.start()
    events: list[Event] = []

    async def record(event: Event, _: MessageContext) -> None:
        events.append(event)

    await bus.subscribe(Subscription(queue="t-batch", routing_keys=("batch.*",), handler=record))
    try:
        yield bus, events
    finally:
        await bus.close()


async def new_batch(store: Store, count: int) -> tuple[Batch, list[BatchCall]]:
    batch = Batch(tenant_id="tenant-1", agent="sim-agent", total=count)
    template = Call(
        tenant_id="tenant-1",
        agent="sim-agent",
        phone="",
        batch_id=batch.batch_id,
        status=CallStatus.SCHEDULED,
        publish_pending=False,
    )
    rows = [
        BatchCall(phone=f"+99670000{i:04d}", variables={}, metadata={}, next_attempt_at=utcnow())
        for i in range(count)
    ]
    await store.insert_batch(batch, template, rows, 3600)
    return batch, rows


async def test_a_batch_completes_once_when_every_call_is_terminal(
    store: Store, bus_and_events: tuple[InProcessBus, list[Event]]
) -> None:
    bus, events = bus_and_events
    batch, rows = await new_batch(store, 3)
    other, _ = await new_batch(store, 1)  # stays open
    completion = BatchCompletion(store, bus)
    assert await completion.run_once() == 0

    for row, status in zip(rows[:2], [CallStatus.COMPLETED, CallStatus.NO_ANSWER], strict=True):
        await store.update_call(row.call_id, CallChanges(status=status))
    assert await store.batch_has_open_calls(batch.batch_id)
    assert await completion.run_once() == 0
    await store.update_call(rows[2].call_id, CallChanges(status=CallStatus.CANCELED))
    assert not await store.batch_has_open_calls(batch.batch_id)

    assert await completion.run_once() == 1
    assert await completion.run_once() == 0
    [event] = [e for e in events if e.type is EventType.BATCH_COMPLETED]
    assert event.id == batch_event_id(batch.batch_id)
    assert event.data["status"] == "completed"
    counts = event.data["counts"]
    assert (counts["completed"], counts["no_answer"], counts["canceled"]) == (1, 1, 1)
    assert event.data["finished_at"] is not None
    stored = await store.get_batch(batch.batch_id)
    assert stored is not None
    assert stored.completed_at is not None
    assert [b.batch_id for b in await store.find_open_batches()] == [other.batch_id]
    assert await store.mark_batch_completed(batch.batch_id, utcnow()) is None
