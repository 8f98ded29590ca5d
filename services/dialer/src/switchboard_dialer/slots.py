"""The dialer's side of concurrency limits (calls/concurrency.py): giving back a call's
slots when its attempt ends, and the sweep that frees what a dead process left taken.

Slots are given back when the attempt's end is announced (`call.attempt_ended`, sent for
every attempt, or `call.completed` for a call that ended before it was dialed), on a
queue of their own so a backlog of requests never delays a release. The event is at
least once and the release idempotent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from switchboard_shared.calls.concurrency import RATE, Admission, lane_kind, still_needs_slot
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.observability.metrics import SLOTS_SWEPT
from switchboard_shared.ports import MessageContext, Reject, Store, Subscription

log = logging.getLogger(__name__)

QUEUE = "dialer.slots"
_SWEEP_ROUND = 500
_LANES_PER_ROUND = 200


class SlotRelease:
    """Consumes the end of every attempt and gives the call's slots back."""

    def __init__(self, admission: Admission, *, prefetch: int = 50) -> None:
        self._admission = admission
        self._prefetch = prefetch

    def subscription(self) -> Subscription:
        return Subscription(
            queue=QUEUE,
            routing_keys=(EventType.CALL_ATTEMPT_ENDED, EventType.CALL_COMPLETED),
            handler=self.handle,
            prefetch=self._prefetch,
        )

    async def handle(self, event: Event, ctx: MessageContext) -> None:
        if event.call_id is None:
            raise Reject(f"{event.type} without call_id")
        await self._admission.release(event.call_id)


class SlotSweep:
    """Frees slots held longer than the lease by calls that no longer need them (a
    release lost with a dead process), renewing the rest, and hands on waiting calls of
    lanes with room (a wake-up lost the same way). Run it with `PeriodicTask`."""

    def __init__(self, store: Store, admission: Admission, *, lease_seconds: float) -> None:
        self._store = store
        self._admission = admission
        self._lease = timedelta(seconds=lease_seconds)

    async def run_once(self) -> int:
        """One round; returns how many slots were freed plus calls handed on."""
        return await self.free_abandoned() + await self.hand_on_waiting()

    async def free_abandoned(self) -> int:
        now = utcnow()
        freed = 0
        old = await self._store.find_slots(taken_before=now - self._lease, limit=_SWEEP_ROUND)
        for slot in old:
            if lane_kind(slot.scope) == RATE:
                # A calls-per-second slot only counts within its own second.
                await self._store.release_slot(slot.scope, slot.holder)
                continue
            if still_needs_slot(await self._store.get_call(slot.holder)):
                # Looked at again one lease later, behind the slots not yet looked at.
                await self._store.renew_slot(slot.scope, slot.holder, now)
                continue
            log.warning(
                "freed a slot its call no longer needs",
                extra={"call_id": slot.holder, "lane": slot.scope},
            )
            SLOTS_SWEPT.labels(lane_kind(slot.scope)).inc()
            await self._admission.give_back(slot.holder, slot.scope)
            freed += 1
        return freed

    async def hand_on_waiting(self) -> int:
        handed = 0
        lane: str | None = None
        for _ in range(_LANES_PER_ROUND):
            lane = await self._store.next_waiting_lane(after=lane)
            if lane is None:
                break
            handed += await self._admission.hand_on(lane)
        return handed
