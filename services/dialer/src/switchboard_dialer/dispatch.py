"""Scheduled calls that came due are queued, so the dialer takes them as any other.

Each round finds `scheduled` calls whose `next_attempt_at` has passed with one indexed
query (status, next_attempt_at): its cost follows the calls due, not the calls waiting.
Each is moved to `queued` by a compare-and-set on its `next_attempt_at`, which publishes
its `call.requested`; two dispatchers never queue the same attempt twice, and the
dialer's own dial claim makes sure it is dialed once. A dispatcher that dies between
the write and the publish leaves the event in the outbox, which the relay sends. A due
call of a paused batch is set aside instead, one of a canceled batch canceled.

Concurrency limits (calls/concurrency.py) shape what is sent: a round sends a lane (the
tenant's, the batch's) no more calls than it has free slots, and queues the rest straight
into the lane's wait, unsent. So a batch of any size puts at most its free slots' worth of
messages before another tenant's call on the dialer's queue.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from switchboard_shared.calls.batch_control import hold
from switchboard_shared.calls.concurrency import Admission, Limit
from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.batches import BatchState
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.observability.metrics import DISPATCHED
from switchboard_shared.ports import Bus, Store

log = logging.getLogger(__name__)

_SCHEDULED = frozenset({CallStatus.SCHEDULED})


class CallDispatcher:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        admission: Admission | None = None,
        *,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._bus = bus
        # Only the tenants' and batches' limits shape dispatch (providers' act at the dial).
        self._admission = admission or Admission(store, bus, provider_limits={})
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Queue every scheduled call due now; returns how many this round queued."""
        queued = 0
        while True:
            due = await self._store.find_calls(
                statuses=_SCHEDULED, due_before=utcnow(), limit=self._batch_size
            )
            round_queued = 0
            states: dict[str, BatchState | None] = {}
            rooms = _Rooms(self._store)
            limits: dict[str, int | None] = {}
            for call in due:
                if call.batch_id is not None:
                    state = await self._batch_state(call.batch_id, states)
                    if state is BatchState.PAUSED:
                        round_queued += await self._count("held", hold(self._store, call))
                        continue
                    if state is BatchState.CANCELED:
                        round_queued += await self._count("canceled", self._cancel(call))
                        continue
                call_limits = await self._admission.call_limits(call, limits)
                full = await rooms.full_lane(call_limits)
                if full is not None:
                    # Queued, but not sent: a call beyond a limit waits in its lane.
                    parked = self._admission.park_due(call, full)
                    round_queued += await self._count("waiting", parked)
                    continue
                moved = await transition(
                    self._store,
                    self._bus,
                    call.call_id,
                    CallStatus.QUEUED,
                    CallChanges(next_attempt_at=None),
                    guard=CallGuard(next_attempt_at=call.next_attempt_at),
                )
                if moved is not None:
                    rooms.sent(call_limits)
                    round_queued += 1
                    DISPATCHED.labels("queued").inc()
            queued += round_queued
            # A full batch may hide more that are due; a round that moved nothing stops.
            if len(due) < self._batch_size or round_queued == 0:
                return queued

    @staticmethod
    async def _count(outcome: str, action: Awaitable[bool]) -> bool:
        done = await action
        if done:
            DISPATCHED.labels(outcome).inc()
        return done

    async def _batch_state(
        self, batch_id: str, known: dict[str, BatchState | None]
    ) -> BatchState | None:
        # Read once a round: one round's calls share few batches.
        if batch_id not in known:
            batch = await self._store.get_batch(batch_id)
            known[batch_id] = batch.state if batch else None
        return known[batch_id]

    async def _cancel(self, call: Call) -> bool:
        ended = await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.CANCELED,
            CallChanges(ended_reason=EndedReason.CANCELED_BY_CUSTOMER),
            guard=CallGuard(next_attempt_at=call.next_attempt_at),
        )
        return ended is not None


class _Rooms:
    """Free slots per lane for one round: what the store counts, less the calls this
    round sent already (they take their slots in the dialer, a moment later)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._free: dict[str, int] = {}

    async def full_lane(self, limits: list[Limit]) -> str | None:
        """The first lane of `limits` without room, or None."""
        for limit in limits:
            if limit.lane not in self._free:
                self._free[limit.lane] = limit.limit - await self._store.count_slots(limit.lane)
            if self._free[limit.lane] <= 0:
                return limit.lane
        return None

    def sent(self, limits: list[Limit]) -> None:
        for limit in limits:
            self._free[limit.lane] = self._free.get(limit.lane, limit.limit) - 1
