"""Turns `call.requested` into one provider call, and `call.cancel_requested` into a hang-up.

Dial at most once: before calling the provider a dialer claims the call (a token set by
compare-and-set while the call is `queued`). A redelivered message finds the call either
dialed (nothing to do) or claimed. A claim older than the provider timeout plus a margin
belongs to a dialer that died mid-request: before anyone dials again, the provider is
asked whether that request went through (`find_call` by our call id). Found: the call is
recorded as placed. Not found: the claim is taken over and the call dialed. A provider
that cannot be asked is never dialed twice: its callbacks carry our reference and settle
the call; without one by the agent's max duration the call ends `failed`
(`dial_unconfirmed`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from switchboard_shared.call_updates import changes_for, watchdog_deadline
from switchboard_shared.callback_signing import REFERENCE_PARAMETER, callback_reference
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.events import Event, EventType
from switchboard_shared.metrics import DIALER_IN_FLIGHT
from switchboard_shared.outbox import event_for, transition
from switchboard_shared.ports import (
    Bus,
    LookupUnsupported,
    MessageContext,
    Provider,
    ProviderCallRequest,
    ProviderCallState,
    ProviderPermanentError,
    ProviderTransientError,
    PublishError,
    Reject,
    RetryLater,
    Store,
    Subscription,
)
from switchboard_shared.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "dialer.call-requested"
CLAIM_MARGIN_SECONDS = 15.0


class CallDialer:
    def __init__(
        self, store: Store, bus: Bus, providers: dict[str, Provider], settings: Settings
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers
        self._settings = settings
        provider_settings = settings.provider_settings()
        # Per-provider cap on create-call requests in flight in this process; messages
        # beyond it wait unacked within the prefetch window, the rest stay in the queue.
        self._limits = {
            name: asyncio.Semaphore(ps.max_in_flight) for name, ps in provider_settings.items()
        }
        self._timeouts = {name: ps.timeout_seconds for name, ps in provider_settings.items()}

    def subscription(self) -> Subscription:
        return Subscription(
            queue=QUEUE,
            routing_keys=(EventType.CALL_REQUESTED, EventType.CALL_CANCEL_REQUESTED),
            handler=self.handle,
            retry_delays=tuple(self._settings.dial_retry_delays),
            prefetch=self._settings.dialer_prefetch,
        )

    async def handle(self, event: Event, ctx: MessageContext) -> None:
        if event.call_id is None:
            raise Reject(f"{event.type} without call_id")
        if event.type is EventType.CALL_REQUESTED:
            await self.dial(event.call_id, ctx)
        elif event.type is EventType.CALL_CANCEL_REQUESTED:
            await self.hang_up(event.call_id)

    # --- dialing ------------------------------------------------------------------------
    async def dial(self, call_id: str, ctx: MessageContext) -> None:
        call = await self._store.get_call(call_id)
        if call is None:
            raise Reject(f"call {call_id} does not exist")
        if call.status is not CallStatus.QUEUED or call.cancel_requested:
            return  # dialed or ended already: a duplicate message
        agent = await self._store.get_agent(call.agent)
        if agent is None or not agent.enabled:
            await self._fail(call, "agent_unavailable")
            return
        provider = self._providers.get(agent.provider)
        if provider is None:
            await self._fail(call, "provider_not_configured")
            return
        async with self._limits[agent.provider]:
            # Claim only once a slot is free: the claim's age must measure the provider
            # request, not the wait behind the limit, or a live claim would look stale.
            claim = await self._claim(call, agent, provider)
            if claim is None:
                return
            DIALER_IN_FLIGHT.labels(agent.provider).inc()
            try:
                state = await provider.create_call(self._request(call, agent))
            except ProviderTransientError as exc:
                if ctx.is_last_attempt:
                    await self._fail(call, "provider_unavailable")
                    return
                # Nobody holds the call while its retry waits in the broker; if that
                # retry is lost, the reconciler finds the call queued and re-drives it.
                await self._store.update_call(
                    call_id, {"dial_claim": None}, expected={"dial_claim": claim}
                )
                raise RetryLater(f"provider {agent.provider}: {exc}") from exc
            except ProviderPermanentError as exc:
                log.warning("provider refused the call: %s", exc, extra={"call_id": call_id})
                await self._fail(call, "provider_rejected")
                return
            finally:
                DIALER_IN_FLIGHT.labels(agent.provider).dec()
        await self._record_dialed(
            call,
            agent.provider,
            provider,
            state.provider_call_id,
            claim,
            self.watchdog_deadline(agent),
        )

    async def _claim(self, call: Call, agent: Agent, provider: Provider) -> str | None:
        """Take the call for this dialer; None when it is no longer ours to dial."""
        if call.dial_claim is not None:
            if not self.claim_is_stale(call, agent.provider):
                # Another dialer is on it right now; look again once its claim expires.
                raise RetryLater(
                    "claimed by another dialer", delay=self._claim_wait(call, agent.provider)
                )
            try:
                free = await self.settle_stale_claim(call, agent, provider)
            except ProviderTransientError as exc:
                raise RetryLater(f"provider lookup failed: {exc}") from exc
            if not free:
                return None
        token = uuid.uuid4().hex
        claimed = await self._store.update_call(
            call.call_id,
            {"dial_claim": token, "dialing_at": utcnow()},
            expected_statuses=frozenset({CallStatus.QUEUED}),
            expected={"dial_claim": call.dial_claim},
        )
        if claimed is None:
            current = await self._store.get_call(call.call_id)
            if current is not None and current.status is CallStatus.QUEUED:
                raise RetryLater("lost the claim race")
            return None
        return token

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
            state = await provider.find_call(call.call_id)
        except LookupUnsupported:
            return await self._await_unconfirmed(call, agent)
        if state is None:
            return True
        log.warning(
            "a dialer died after the provider accepted the call: recording it",
            extra={"call_id": call.call_id},
        )
        await self._record_found(call, agent, state)
        return False

    async def _await_unconfirmed(self, call: Call, agent: Agent) -> bool:
        """No lookup: callbacks carrying our reference settle the call if it was placed;
        past the agent's max duration without one, it ends failed (never dialed twice)."""
        started = call.dialing_at or call.updated_at
        horizon = started + timedelta(
            seconds=agent.max_duration_seconds + self._settings.watchdog_grace_seconds
        )
        if utcnow() < horizon:
            return False
        await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.FAILED,
            {"ended_reason": "dial_unconfirmed"},
            expected={"dial_claim": call.dial_claim},
        )
        return False

    async def _record_found(self, call: Call, agent: Agent, state: ProviderCallState) -> None:
        status = CallStatus.DIALING if state.status is CallStatus.QUEUED else state.status
        changes = {
            **changes_for(call, state),
            "provider": agent.provider,
            "provider_call_id": state.provider_call_id,
        }
        if not status.is_terminal:
            changes["watchdog_deadline"] = self.watchdog_deadline(agent)
        await transition(
            self._store,
            self._bus,
            call.call_id,
            status,
            changes,
            expected={"dial_claim": call.dial_claim},
        )

    def watchdog_deadline(self, agent: Agent) -> datetime:
        return watchdog_deadline(agent, self._settings.watchdog_grace_seconds)

    async def redrive(self, call: Call) -> bool:
        """Drive a `queued` call the broker may have lost: settle a stale claim, then
        republish its `call.requested` (same event id: consumers dedupe). Returns True
        when something was done."""
        agent = await self._store.get_agent(call.agent)
        provider = self._providers.get(agent.provider) if agent else None
        if agent is None or provider is None or not agent.enabled:
            return await self._republish(call)  # the consumer fails it with the reason
        if call.dial_claim is not None:
            if not self.claim_is_stale(call, agent.provider):
                return False
            if not await self.settle_stale_claim(call, agent, provider):
                return True
            released = await self._store.update_call(
                call.call_id,
                {"dial_claim": None},
                expected_statuses=frozenset({CallStatus.QUEUED}),
                expected={"dial_claim": call.dial_claim},
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
            call.call_id, {}, expected_statuses=frozenset({CallStatus.QUEUED})
        )
        return True

    def _request(self, call: Call, agent: Agent) -> ProviderCallRequest:
        provider_settings = self._settings.provider_settings()[agent.provider]
        reference = callback_reference(
            provider_settings.callback_secret.get_secret_value(), call.call_id
        )
        return ProviderCallRequest(
            call_id=call.call_id,
            to_number=call.phone,
            from_number=agent.from_number or provider_settings.from_number,
            provider_agent_id=agent.provider_agent_id,
            variables=call.variables,
            callback_url=(
                f"{self._settings.callback_base_url.rstrip('/')}"
                f"/v1/webhooks/providers/{agent.provider}?{REFERENCE_PARAMETER}={reference}"
            ),
        )

    async def _record_dialed(
        self,
        call: Call,
        provider_name: str,
        provider: Provider,
        provider_call_id: str,
        claim: str,
        deadline: datetime,
    ) -> None:
        dialed = await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.DIALING,
            {
                "provider": provider_name,
                "provider_call_id": provider_call_id,
                "watchdog_deadline": deadline,
            },
            expected={"dial_claim": claim},
        )
        if dialed is not None:
            return
        # The call moved on while the provider dialed: canceled by the customer, or our
        # claim expired and another dialer placed it. Unless the provider handed us the
        # call that dialer recorded, this provider call must go.
        current = await self._store.get_call(call.call_id)
        if current is not None and current.provider_call_id == provider_call_id:
            # Already recorded as this provider call: by its own callback (which carries
            # our reference), or by another dialer whose create the provider deduped by
            # our Idempotency-Key. It is the customer's call: keep it.
            return
        if current is not None and current.provider_call_id is None:
            await self._store.update_call(
                call.call_id, {"provider": provider_name, "provider_call_id": provider_call_id}
            )
        log.warning("hanging up a provider call nobody wants", extra={"call_id": call.call_id})
        await provider.cancel_call(provider_call_id)

    async def _fail(self, call: Call, reason: str) -> None:
        await transition(
            self._store, self._bus, call.call_id, CallStatus.FAILED, {"ended_reason": reason}
        )

    # --- canceling ---------------------------------------------------------------------
    async def hang_up(self, call_id: str) -> None:
        call = await self._store.get_call(call_id)
        if call is None or call.status.is_terminal:
            return
        if call.provider and call.provider_call_id and call.provider in self._providers:
            try:
                await self._providers[call.provider].cancel_call(call.provider_call_id)
            except ProviderTransientError as exc:
                raise RetryLater(f"hang-up failed: {exc}") from exc
            except ProviderPermanentError as exc:
                # The provider no longer knows the call (it ended): the callback settles it.
                log.info("provider refused the hang-up: %s", exc, extra={"call_id": call_id})
                return
        await transition(
            self._store,
            self._bus,
            call_id,
            CallStatus.CANCELED,
            {"ended_reason": "canceled_by_customer"},
        )
