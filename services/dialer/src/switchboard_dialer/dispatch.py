"""Scheduled calls that came due are queued, so the dialer takes them as any other.

Each round finds `scheduled` calls whose `next_attempt_at` has passed with one indexed
query (status, next_attempt_at): its cost follows the calls due, not the calls waiting.
Each is moved to `queued` by a compare-and-set on its `next_attempt_at`, which publishes
its `call.requested`; two dispatchers never queue the same attempt twice, and the
dialer's own dial claim makes sure it is dialed once. A dispatcher that dies between
the write and the publish leaves the event in the outbox, which the relay sends. A due
call of a paused batch is set aside instead, one of a canceled batch canceled.
"""

from __future__ import annotations

import logging

from switchboard_shared.calls.batch_control import hold
from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.batches import BatchState
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.ports import Bus, Store

log = logging.getLogger(__name__)

_SCHEDULED = frozenset({CallStatus.SCHEDULED})


class CallDispatcher:
    def __init__(self, store: Store, bus: Bus, *, batch_size: int = 500) -> None:
        self._store = store
        self._bus = bus
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
            for call in due:
                if call.batch_id is not None:
                    state = await self._batch_state(call.batch_id, states)
                    if state is BatchState.PAUSED:
                        round_queued += await hold(self._store, call)
                        continue
                    if state is BatchState.CANCELED:
                        round_queued += await self._cancel(call)
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
                    round_queued += 1
            queued += round_queued
            # A full batch may hide more that are due; a round that moved nothing stops.
            if len(due) < self._batch_size or round_queued == 0:
                return queued

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
