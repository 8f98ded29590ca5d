"""A dial claim whose dialer went quiet, and a queued call whose message was lost.

A claim older than the provider timeout plus a margin belongs to a dialer that died
mid-request (or whose create went unanswered): before anyone dials again, the provider
it names is asked whether that request went through (`find_call` by our call id).
Found: the call is recorded as placed there. Not found: the claim may be taken over. A
provider that cannot be asked is never dialed again: its callbacks carry our reference
and settle the call; without one by the agent's max duration the call ends `failed`
(`dial_unconfirmed`). `redrive` is the reconciler's way in for a `queued` call.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from switchboard_shared.calls.agent_defaults import max_duration_of
from switchboard_shared.calls.batch_control import note_batch_dialed
from switchboard_shared.calls.outbox import event_for, transition
from switchboard_shared.calls.provider_updates import changes_for, watchdog_deadline
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.ports import (
    Bus,
    LookupUnsupported,
    Provider,
    ProviderCallState,
    PublishError,
    Store,
)
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

CLAIM_MARGIN_SECONDS = 15.0
QUEUED_ONLY = frozenset({CallStatus.QUEUED})


class StaleClaims:
    """The recovery half of `CallDialer` (which sets these in its constructor)."""

    _store: Store
    _bus: Bus
    _providers: dict[str, Provider]
    _settings: Settings
    _timeouts: dict[str, float]

    def _claim_provider(self, call: Call, agent: Agent) -> str | None:
        """The provider a call's dial claim sent its create to: the claim records it (a
        claim written before routes did not: its agent's first configured route)."""
        if call.provider in self._providers:
            return call.provider
        return next((r.provider for r in agent.routes if r.provider in self._providers), None)

    def claim_is_stale(self, call: Call, provider_name: str) -> bool:
        """Whether the call's dial claim is older than a request to `provider_name` can
        last: its dialer died, or lost its retry."""
        if call.dial_claim is None:
            return False
        if call.dialing_at is None:
            return True
        return utcnow() - call.dialing_at >= self._stale_after(provider_name)

    def _stale_after(self, provider_name: str) -> timedelta:
        return timedelta(seconds=self._timeouts[provider_name] + CLAIM_MARGIN_SECONDS)

    def _claim_wait(self, call: Call, provider_name: str) -> float:
        """Seconds until the call's claim turns stale, plus one."""
        age = utcnow() - (call.dialing_at or utcnow())
        return max((self._stale_after(provider_name) - age).total_seconds(), 0.0) + 1

    async def settle_stale_claim(self, call: Call, agent: Agent, provider: Provider) -> bool:
        """A call claimed by a dialer that went quiet: did its provider request go through?

        Returns True when the provider has no call for us (free to dial); False when the
        call was settled here (recorded as placed, or failed) or must wait for the
        provider's callbacks. Raises ProviderTransientError when the provider cannot
        answer now.
        """
        try:
            state = await provider.find_call(call.dial_reference)
        except LookupUnsupported:
            return await self._await_unconfirmed(call, agent)
        if state is None:
            return True
        log.warning(
            "a dialer died after the provider accepted the call: recording it",
            extra={"call_id": call.call_id},
        )
        await self._record_found(call, agent, state, call.provider or provider.name)
        return False

    async def _await_unconfirmed(self, call: Call, agent: Agent) -> bool:
        """No lookup: callbacks carrying our reference settle the call if it was placed;
        past the agent's max duration without one, it ends failed (never dialed twice)."""
        started = call.dialing_at or call.updated_at
        horizon = started + timedelta(
            seconds=max_duration_of(call, agent) + self._settings.watchdog_grace_seconds
        )
        if utcnow() < horizon:
            return False
        await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.FAILED,
            CallChanges(ended_reason=EndedReason.DIAL_UNCONFIRMED),
            guard=CallGuard(dial_claim=call.dial_claim),
        )
        return False

    async def _record_found(
        self, call: Call, agent: Agent, state: ProviderCallState, provider_name: str
    ) -> None:
        status = CallStatus.DIALING if state.status is CallStatus.QUEUED else state.status
        changes = changes_for(call, state).plus(
            CallChanges(
                provider=provider_name,
                provider_call_id=state.provider_call_id,
                dialed_at=call.dialing_at or utcnow(),
            )
        )
        if not status.is_terminal:
            deadline = self.watchdog_deadline(call, agent)
            changes = changes.plus(CallChanges(watchdog_deadline=deadline))
        found = await transition(
            self._store,
            self._bus,
            call.call_id,
            status,
            changes,
            guard=CallGuard(dial_claim=call.dial_claim),
        )
        if found is not None:
            await note_batch_dialed(self._store, found)

    def watchdog_deadline(self, call: Call, agent: Agent) -> datetime:
        return watchdog_deadline(call, agent, self._settings.watchdog_grace_seconds)

    async def redrive(self, call: Call) -> bool:
        """Drive a `queued` call the broker may have lost: settle a stale claim, then
        republish its `call.requested` (same event id: consumers dedupe). Returns True
        when something was done."""
        agent = await self._store.get_agent(call.agent)
        if agent is None or not agent.enabled:
            return await self._republish(call)  # the consumer fails it with the reason
        held_by = self._claim_provider(call, agent)
        if call.dial_claim is not None and held_by is not None:
            if not self.claim_is_stale(call, held_by):
                return False
            if not await self.settle_stale_claim(call, agent, self._providers[held_by]):
                return True
        if call.dial_claim is not None:
            released = await self._store.update_call(
                call.call_id,
                CallChanges(dial_claim=None),
                guard=CallGuard(statuses=QUEUED_ONLY, dial_claim=call.dial_claim),
            )
            if released is None:
                return False
            call = released
        return await self._republish(call)

    async def _republish(self, call: Call) -> bool:
        try:
            await self._bus.publish(event_for(call))
        except PublishError as exc:
            log.warning(
                "could not re-drive a queued call: %s", exc, extra={"call_id": call.call_id}
            )
            return False
        # Touch it, so the next look comes one full period later.
        await self._store.update_call(
            call.call_id, CallChanges(), guard=CallGuard(statuses=QUEUED_ONLY)
        )
        return True
