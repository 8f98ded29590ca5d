"""Concurrency limits end to end inside one process: the dialer, the release of slots
when attempts end, the dispatcher and the sweep, over a real SQLite store, the in-process
bus and the provider simulator on loopback (its callbacks through the ingest routes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from switchboard_dialer.dialing import CallDialer
from switchboard_dialer.dispatch import CallDispatcher
from switchboard_dialer.slots import SlotRelease, SlotSweep
from switchboard_dialer.watchdog import CallWatchdog
from switchboard_shared.calls.concurrency import BATCH, PROVIDER, TENANT, lane
from switchboard_shared.calls.events import EventType
from switchboard_shared.calls.outbox import event_for
from switchboard_shared.domain.batches import Batch
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import LIVE_STATUSES, Call, CallStatus, utcnow
from switchboard_shared.domain.tenants import Tenant
from tests.support.net import eventually
from tests.support.pipeline_parts import Pipeline, queued_call, running_pipeline

pytestmark = pytest.mark.timeout(90)

TALK = 0.4  # seconds each simulated call talks: long enough for calls to overlap


@contextlib.asynccontextmanager
async def dialing_pipeline(tmp_path: Path, **simulator_limits: Any) -> AsyncIterator[Pipeline]:
    """A pipeline whose calls run to the end: the dialer (with `simulator_limits` in the
    simulator's settings) and the slots' release consume the bus, the simulator's
    callbacks go through ingest."""
    async with running_pipeline(tmp_path, with_ingest=True, sim_talk_seconds=TALK) as p:
        simulator = p.settings.simulator.model_copy(update=simulator_limits)
        settings = p.settings.model_copy(update={"simulator": simulator})
        dialer = CallDialer(p.store, p.bus, p.providers, settings)
        await p.bus.subscribe(dialer.subscription())
        await p.bus.subscribe(SlotRelease(dialer.admission).subscription())
        yield p


async def tenant_with_limit(p: Pipeline, limit: int) -> Tenant:
    tenant = await p.store.create_tenant(Tenant(name=f"t{limit}-{utcnow().timestamp()}"))
    updated = await p.store.set_tenant_limits(tenant.tenant_id, max_concurrent_calls=limit)
    assert updated is not None
    return updated


class LiveSampler:
    """Samples, every 20 ms, how many of `calls` are placed and live and how many hold a
    slot of `scope`; the most seen of each."""

    def __init__(self, p: Pipeline, call_ids: list[str], scope: str) -> None:
        self._p, self._ids, self._scope = p, call_ids, scope
        self.most_live = 0
        self.most_slots = 0
        self.saw_waiting = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            calls = [await self._p.store.get_call(i) for i in self._ids]
            live = sum(1 for c in calls if c is not None and c.status in LIVE_STATUSES)
            self.saw_waiting |= any(c is not None and c.waiting_lane for c in calls)
            self.most_live = max(self.most_live, live)
            self.most_slots = max(self.most_slots, await self._p.store.count_slots(self._scope))
            await asyncio.sleep(0.02)

    def __enter__(self) -> LiveSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def all_end(p: Pipeline, calls: list[Call], within: float = 40) -> list[Call]:
    async def ended() -> list[Call] | None:
        current = [await p.store.get_call(c.call_id) for c in calls]
        done = [c for c in current if c is not None and c.status.is_terminal]
        return done if len(done) == len(calls) else None

    return await eventually(ended, within=within)


async def all_slots_given_back(p: Pipeline, scope: str, within: float = 10) -> None:
    """Every slot of `scope` given back: the attempt's end frees them through
    `dialer.slots`, just after its call's terminal write."""

    async def freed() -> bool:
        return await p.store.count_slots(scope) == 0

    await eventually(freed, within=within)


async def request_all(p: Pipeline, calls: list[Call]) -> None:
    for call in calls:
        await p.bus.publish(event_for(call))


async def test_a_tenant_never_has_more_live_calls_than_its_limit(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 2)
        calls = [await queued_call(p.store, tenant_id=tenant.tenant_id) for _ in range(7)]
        scope = lane(TENANT, tenant.tenant_id)
        with LiveSampler(p, [c.call_id for c in calls], scope) as sampler:
            await request_all(p, calls)
            ended = await all_end(p, calls)

        assert {c.status for c in ended} == {CallStatus.COMPLETED}
        assert sampler.most_live == 2  # the limit was reached, and held
        assert sampler.most_slots == 2
        assert sampler.saw_waiting
        await all_slots_given_back(p, scope)
        for call in ended:
            assert call.waiting_lane is None
            completions = p.events.of(call.call_id, EventType.CALL_COMPLETED)
            assert len({e.id for e in completions}) == 1
        # Each call was dialed once, whatever it waited.
        assert len(await p.sim_calls()) == len(calls)


async def test_another_tenants_call_is_not_held_behind_a_full_tenant(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path) as p:
        busy = await tenant_with_limit(p, 1)
        other = await tenant_with_limit(p, 1)
        backlog = [await queued_call(p.store, tenant_id=busy.tenant_id) for _ in range(6)]
        await request_all(p, backlog)
        await eventually(
            lambda: p.store.find_calls(waiting_lane=lane(TENANT, busy.tenant_id), limit=10)
        )
        single = await queued_call(p.store, tenant_id=other.tenant_id)
        await request_all(p, [single])

        dialed = await eventually(lambda: _live_or_done(p, single.call_id), within=5)

        # The busy tenant still has calls waiting: the other one's went first.
        assert dialed.status is not CallStatus.QUEUED
        waiting = await p.store.find_calls(waiting_lane=lane(TENANT, busy.tenant_id), limit=10)
        assert waiting
        await all_end(p, [*backlog, single])


async def _live_or_done(p: Pipeline, call_id: str) -> Call | None:
    call = await p.store.get_call(call_id)
    if call is not None and (call.status in LIVE_STATUSES or call.status.is_terminal):
        return call
    return None


async def test_a_batch_keeps_to_its_max_concurrency(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 10)
        batch = Batch(tenant_id=tenant.tenant_id, agent="sim-agent", total=5, max_concurrency=1)
        template = Call(tenant_id=tenant.tenant_id, agent="sim-agent", phone="+15005550001")
        await p.store.insert_batch(batch, template, [], 3600)
        calls = [
            await queued_call(p.store, tenant_id=tenant.tenant_id, batch_id=batch.batch_id)
            for _ in range(4)
        ]
        scope = lane(BATCH, batch.batch_id)
        with LiveSampler(p, [c.call_id for c in calls], scope) as sampler:
            await request_all(p, calls)
            await all_end(p, calls)

        assert sampler.most_live == 1
        assert sampler.most_slots == 1
        await all_slots_given_back(p, lane(TENANT, tenant.tenant_id))


async def test_a_provider_keeps_to_its_concurrent_call_limit(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path, max_concurrent_calls=2) as p:
        tenant = await tenant_with_limit(p, 50)
        calls = [await queued_call(p.store, tenant_id=tenant.tenant_id) for _ in range(6)]
        scope = lane(PROVIDER, "simulator")
        with LiveSampler(p, [c.call_id for c in calls], scope) as sampler:
            await request_all(p, calls)
            ended = await all_end(p, calls)

        assert {c.status for c in ended} == {CallStatus.COMPLETED}
        assert sampler.most_live == 2
        assert sampler.most_slots == 2


async def test_the_dispatcher_sends_a_lane_only_its_free_slots(tmp_path: Path) -> None:
    async with running_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 3)
        due = utcnow() - timedelta(seconds=1)
        calls = [
            await queued_call(
                p.store,
                tenant_id=tenant.tenant_id,
                status=CallStatus.SCHEDULED,
                next_attempt_at=due,
            )
            for _ in range(8)
        ]
        # One slot is taken already: two are free.
        assert await p.store.take_slot(lane(TENANT, tenant.tenant_id), "a-live-call", 3)

        moved = await CallDispatcher(p.store, p.bus).run_once()

        assert moved == 8
        stored = [await p.store.get_call(c.call_id) for c in calls]
        assert {c.status for c in stored if c} == {CallStatus.QUEUED}
        sent = [c for c in stored if c and c.waiting_lane is None]
        waiting = [c for c in stored if c and c.waiting_lane == lane(TENANT, tenant.tenant_id)]
        assert (len(sent), len(waiting)) == (2, 6)
        await asyncio.sleep(0.2)
        requested = {e.call_id for e in p.events.events if e.type is EventType.CALL_REQUESTED}
        assert requested == {c.call_id for c in sent}


async def test_the_sweep_frees_a_dead_dialers_slots_and_hands_them_on(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 1)
        scope = lane(TENANT, tenant.tenant_id)
        # A dialer took the slot for this call and died; the call ended without a release.
        gone = await queued_call(p.store, tenant_id=tenant.tenant_id)
        assert await p.store.take_slot(scope, gone.call_id, 1)
        await p.store.update_call(gone.call_id, CallChanges(status=CallStatus.FAILED))
        # A live call of the same tenant keeps its slot.
        waiting = await queued_call(p.store, tenant_id=tenant.tenant_id)
        await p.store.update_call(
            waiting.call_id, CallChanges(waiting_lane=scope, waiting_since=utcnow())
        )
        dialer = CallDialer(p.store, p.bus, p.providers, p.settings)
        sweep = SlotSweep(p.store, dialer.admission, lease_seconds=0.001)
        await asyncio.sleep(0.01)

        assert await sweep.run_once() >= 1

        ended = await all_end(p, [waiting])
        assert ended[0].status is CallStatus.COMPLETED
        await all_slots_given_back(p, scope)


async def test_a_waiting_call_is_left_alone_by_the_reconciler(tmp_path: Path) -> None:
    async with running_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 1)
        call = await queued_call(p.store, tenant_id=tenant.tenant_id, publish_pending=False)
        scope = lane(TENANT, tenant.tenant_id)
        old = utcnow() - timedelta(hours=1)
        await p.store.update_call(
            call.call_id, CallChanges(waiting_lane=scope, waiting_since=old, updated_at=old)
        )
        stuck = await queued_call(p.store, tenant_id=tenant.tenant_id, publish_pending=False)
        await p.store.update_call(stuck.call_id, CallChanges(updated_at=old))
        dialer = CallDialer(p.store, p.bus, p.providers, p.settings)
        watchdog = CallWatchdog(p.store, p.bus, p.providers, dialer=dialer, queued_after_seconds=60)

        assert await watchdog.redrive_queued() == 1
        await asyncio.sleep(0.2)
        requested = {e.call_id for e in p.events.events if e.type is EventType.CALL_REQUESTED}
        assert requested == {stuck.call_id}


async def test_provider_creates_keep_to_calls_per_second(tmp_path: Path) -> None:
    async with dialing_pipeline(tmp_path, calls_per_second=2) as p:
        tenant = await tenant_with_limit(p, 50)
        calls = [await queued_call(p.store, tenant_id=tenant.tenant_id) for _ in range(6)]
        await request_all(p, calls)
        ended = await all_end(p, calls)

    seconds: dict[int, int] = {}
    for call in ended:
        assert call.dialing_at is not None
        second = int(call.dialing_at.timestamp())
        seconds[second] = seconds.get(second, 0) + 1
    assert max(seconds.values()) <= 2
    assert len(seconds) >= 3


async def test_two_hand_ons_racing_for_one_waiter_leave_it_its_slot(tmp_path: Path) -> None:
    async with running_pipeline(tmp_path) as p:
        tenant = await tenant_with_limit(p, 1)
        scope = lane(TENANT, tenant.tenant_id)
        call = await queued_call(p.store, tenant_id=tenant.tenant_id, publish_pending=False)
        await p.store.update_call(
            call.call_id, CallChanges(waiting_lane=scope, waiting_since=utcnow())
        )
        admission = CallDialer(p.store, p.bus, p.providers, p.settings).admission

        handed = await asyncio.gather(*(admission.hand_on(scope) for _ in range(4)))

        assert sum(handed) == 1  # woken once
        woken = await p.store.get_call(call.call_id)
        assert woken is not None
        assert woken.waiting_lane is None
        # The losers of the race did not give back the slot the winner took for it.
        assert await p.store.count_slots(scope) == 1
        assert await p.store.release_slot(scope, call.call_id)
