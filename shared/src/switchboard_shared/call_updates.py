"""Applying what a provider says about a call: from a callback (webhook-ingest) or from
`get_call` (the dialer's watchdog). Same rules either way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.outbox import transition
from switchboard_shared.ports import Bus, ProviderCallState, Store


def changes_for(call: Call, state: ProviderCallState) -> dict[str, Any]:
    """The stored fields a provider state sets, besides the status itself."""
    now = utcnow()
    changes: dict[str, Any] = {}
    if state.status is CallStatus.IN_PROGRESS:
        changes["started_at"] = state.started_at or call.started_at or now
    if state.status.is_terminal:
        ended_at = state.ended_at or now
        changes["ended_at"] = ended_at
        changes["ended_reason"] = state.ended_reason or _default_reason(state.status)
        if state.status is CallStatus.CANCELED and call.cancel_requested:
            # The hang-up the customer asked for: the provider's callback may land before
            # the dialer records it, and the reason must not depend on which came first.
            changes["ended_reason"] = "canceled_by_customer"
        if state.transcript is not None:
            changes["transcript"] = state.transcript
        if state.duration is not None:
            changes["duration"] = max(0, int(state.duration))
        if state.status is CallStatus.COMPLETED:
            started = state.started_at or call.started_at
            if started is None and state.duration is not None:
                started = ended_at - timedelta(seconds=int(state.duration))
            changes["started_at"] = started
        elif state.started_at or call.started_at:
            changes["started_at"] = state.started_at or call.started_at
    return changes


def _default_reason(status: CallStatus) -> str:
    return {
        CallStatus.COMPLETED: "hangup",
        CallStatus.BUSY: "busy",
        CallStatus.NO_ANSWER: "no_answer",
        CallStatus.FAILED: "provider_error",
        CallStatus.CANCELED: "canceled",
    }[status]


def watchdog_deadline(agent: Agent, grace_seconds: float) -> datetime:
    """When the watchdog settles a call placed now if it is still live."""
    return utcnow() + timedelta(seconds=agent.max_duration_seconds + grace_seconds)


async def apply_provider_state(
    store: Store,
    bus: Bus,
    call: Call,
    state: ProviderCallState,
    *,
    also: Mapping[str, Any] | None = None,
    expected: Mapping[str, Any] | None = None,
) -> Call | None:
    """Move the call forward to the provider's status and publish the event; `also`
    are more fields to store in the same write, `expected` its extra guard.

    Returns None when the update is late or a duplicate (the state machine refuses it):
    nothing is stored and nothing is published.
    """
    changes = {**changes_for(call, state), **(also or {})}
    return await transition(store, bus, call.call_id, state.status, changes, expected=expected)
