"""Applying what a provider says about a call: from a callback (webhook-ingest) or from
`get_call` (the dialer's watchdog). Same rules either way."""

from __future__ import annotations

from datetime import datetime, timedelta

from switchboard_shared.calls.agent_defaults import max_duration_of
from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import TERMINAL_STATUSES, Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason, default_reason
from switchboard_shared.ports import Bus, CallStore, ProviderCallState


def changes_for(call: Call, state: ProviderCallState) -> CallChanges:
    """The stored fields a provider state sets, besides the status itself."""
    now = utcnow()
    if state.status is CallStatus.RINGING:
        return CallChanges(ringing_at=call.ringing_at or now)
    if state.status is CallStatus.IN_PROGRESS:
        return CallChanges(started_at=state.started_at or call.started_at or now)
    if not state.status.is_terminal:
        return CallChanges()
    ended_at = state.ended_at or now
    reason = state.ended_reason or default_reason(state.status)
    if state.status is CallStatus.CANCELED and call.cancel_requested:
        # The hang-up the customer asked for: the provider's callback may land before
        # the dialer records it, and the reason must not depend on which came first.
        reason = EndedReason.CANCELED_BY_CUSTOMER
    changes = CallChanges(
        ended_at=ended_at, ended_reason=reason, ended_reason_raw=state.ended_reason_raw
    ).plus(results_of(state))
    if state.transcript is not None:
        changes = changes.plus(CallChanges(transcript=state.transcript))
    if state.duration is not None:
        changes = changes.plus(CallChanges(duration=max(0, int(state.duration))))
    started = state.started_at or call.started_at
    if state.status is CallStatus.COMPLETED:
        if started is None and state.duration is not None:
            started = ended_at - timedelta(seconds=int(state.duration))
        return changes.plus(CallChanges(started_at=started))
    if started:
        return changes.plus(CallChanges(started_at=started))
    return changes


def results_of(state: ProviderCallState, *, late: bool = False) -> CallChanges:
    """The outcome, analysis and recording a provider state reports (only what it says).

    `late`: for a message after the end, results only add up: one that lacks the
    recording (messages may arrive out of order) does not take back one reported before.
    """
    results = CallChanges()
    if state.outcome is not None:
        results = results.plus(CallChanges(outcome=state.outcome))
    if state.analysis is not None:
        results = results.plus(CallChanges(analysis=state.analysis.model_dump()))
    if state.recording_available is not None and not (late and not state.recording_available):
        results = results.plus(CallChanges(recording_available=state.recording_available))
    return results


def watchdog_deadline(call: Call, agent: Agent | None, grace_seconds: float) -> datetime:
    """When the watchdog settles a call placed now if it is still live."""
    return utcnow() + timedelta(seconds=max_duration_of(call, agent) + grace_seconds)


async def apply_provider_state(
    store: CallStore,
    bus: Bus,
    call: Call,
    state: ProviderCallState,
    *,
    also: CallChanges | None = None,
    guard: CallGuard | None = None,
) -> Call | None:
    """Move the call forward to the provider's status and publish the event; `also`
    are more fields to store in the same write, `guard` its extra guard.

    Returns None when the update is late or a duplicate (the state machine refuses it):
    nothing is published, and nothing is stored but the results a provider sends after
    the end (an analysis, a recording) of a call that already ended.
    """
    changes = changes_for(call, state).plus(also or CallChanges())
    moved = await transition(store, bus, call.call_id, state.status, changes, guard=guard)
    if moved is None and state.status.is_terminal:
        # Retell's call_analyzed and Vapi's end-of-call-report follow the end itself.
        results = results_of(state, late=True)
        if results.changed():
            await store.update_call(
                call.call_id, results, guard=CallGuard(statuses=TERMINAL_STATUSES)
            )
    return moved
