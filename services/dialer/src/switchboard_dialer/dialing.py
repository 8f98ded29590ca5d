"""Turns `call.requested` into one provider call, and `call.cancel_requested` into a hang-up.

Dial at most once: before calling the provider a dialer claims the call (a token set by
compare-and-set while the call is `queued`). A redelivered message finds the call either
dialed (nothing to do) or claimed. A claim older than the provider timeout plus a margin
belongs to a dialer that died mid-request and is taken over; the only double-dial window
left is a crash during the provider's own HTTP request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.events import Event, EventType
from switchboard_shared.metrics import DIALER_IN_FLIGHT
from switchboard_shared.outbox import transition
from switchboard_shared.ports import (
    Bus,
    MessageContext,
    Provider,
    ProviderCallRequest,
    ProviderPermanentError,
    ProviderTransientError,
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
            claim = await self._claim(call, agent.provider)
            if claim is None:
                return
            DIALER_IN_FLIGHT.labels(agent.provider).inc()
            try:
                state = await provider.create_call(self._request(call, agent))
            except ProviderTransientError as exc:
                if ctx.is_last_attempt:
                    await self._fail(call, "provider_unavailable")
                    return
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
        # The watchdog settles the call if it is still live after this.
        deadline = utcnow() + timedelta(
            seconds=agent.max_duration_seconds + self._settings.watchdog_grace_seconds
        )
        await self._record_dialed(
            call, agent.provider, provider, state.provider_call_id, claim, deadline
        )

    async def _claim(self, call: Call, provider_name: str) -> str | None:
        """Take the call for this dialer; None when it is no longer ours to dial."""
        stale_after = timedelta(seconds=self._timeouts[provider_name] + CLAIM_MARGIN_SECONDS)
        if call.dial_claim is not None and call.dialing_at is not None:
            age = utcnow() - call.dialing_at
            if age < stale_after:
                # Another dialer is on it right now; look again once its claim expires.
                raise RetryLater("claimed by another dialer", delay=(stale_after - age).seconds + 1)
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

    def _request(self, call: Call, agent: Agent) -> ProviderCallRequest:
        provider_settings = self._settings.provider_settings()[agent.provider]
        return ProviderCallRequest(
            call_id=call.call_id,
            to_number=call.phone,
            from_number=agent.from_number or provider_settings.from_number,
            provider_agent_id=agent.provider_agent_id,
            variables=call.variables,
            callback_url=(
                f"{self._settings.callback_base_url.rstrip('/')}"
                f"/v1/webhooks/providers/{agent.provider}"
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
        if (
            current is not None
            and current.provider_call_id == provider_call_id
            and not current.status.is_terminal
        ):
            # The provider honoured our Idempotency-Key and returned the call another
            # dialer already recorded: that is the customer's live call, keep it.
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
