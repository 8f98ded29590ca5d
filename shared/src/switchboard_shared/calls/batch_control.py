"""Pausing, resuming and canceling a batch's calls.

A pause is the batch's state; the dispatcher sets a due call of a paused batch aside
(`held_next_attempt_at`, with `next_attempt_at` cleared) instead of queuing it, so a
redial scheduled after the pause is held too. Resume puts every held due time back.
Cancel ends every call of the batch not yet dialed (`scheduled` or `queued`) as
`canceled`; live calls finish. Each works through the store in rounds, so any number of
calls is handled without holding them all. A batch's `started_at` is set by the first
dial of any of its calls.
"""

from __future__ import annotations

import logging

from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.ports import BatchStore, Bus, CallStore, StoreError

log = logging.getLogger(__name__)

_SCHEDULED = frozenset({CallStatus.SCHEDULED})
_NOT_DIALED = frozenset({CallStatus.SCHEDULED, CallStatus.QUEUED})
_ROUND = 500


async def note_batch_dialed(store: BatchStore, call: Call) -> None:
    """Record that `call` (just dialed) started its batch, unless one dialed before it
    did (compare-and-set: the first dial's time stays). A store error is logged, not
    raised: the dial is recorded already, and the time is informational."""
    if call.batch_id is None:
        return
    try:
        await store.mark_batch_started(call.batch_id, call.dialed_at or utcnow())
    except StoreError as exc:
        log.warning("batch start not recorded: %s", exc, extra={"call_id": call.call_id})


async def hold(store: CallStore, call: Call) -> bool:
    """Set a due call of a paused batch aside; False when it moved meanwhile."""
    held = await store.update_call(
        call.call_id,
        CallChanges(held_next_attempt_at=call.next_attempt_at, next_attempt_at=None),
        guard=CallGuard(statuses=_SCHEDULED, next_attempt_at=call.next_attempt_at),
    )
    return held is not None


async def release_held(store: CallStore, batch_id: str) -> int:
    """Put back the due time of every held call of the batch; returns how many."""
    released = 0
    while True:
        held = await store.find_calls(
            statuses=_SCHEDULED, batch_id=batch_id, held=True, limit=_ROUND
        )
        round_released = 0
        for call in held:
            moved = await store.update_call(
                call.call_id,
                CallChanges(next_attempt_at=call.held_next_attempt_at, held_next_attempt_at=None),
                guard=CallGuard(
                    statuses=_SCHEDULED, held_next_attempt_at=call.held_next_attempt_at
                ),
            )
            round_released += moved is not None
        released += round_released
        if len(held) < _ROUND or round_released == 0:
            return released


async def cancel_not_dialed(store: CallStore, bus: Bus, batch_id: str) -> int:
    """End every scheduled or queued call of the batch as canceled; returns how many."""
    canceled = 0
    while True:
        waiting = await store.find_calls(statuses=_NOT_DIALED, batch_id=batch_id, limit=_ROUND)
        round_canceled = 0
        for call in waiting:
            ended = await transition(
                store,
                bus,
                call.call_id,
                CallStatus.CANCELED,
                CallChanges(ended_reason=EndedReason.CANCELED_BY_CUSTOMER),
                # A dialer holding its claim is placing it: that one finishes as a live call.
                guard=CallGuard(statuses=_NOT_DIALED, dial_claim=None),
            )
            round_canceled += ended is not None
        canceled += round_canceled
        if len(waiting) < _ROUND or round_canceled == 0:
            return canceled
