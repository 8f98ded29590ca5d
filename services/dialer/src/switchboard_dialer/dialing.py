"""Turns `call.requested` into one provider call, and `call.cancel_requested` into a hang-up.

Dial at most once: before calling a provider a dialer claims the call for it (a token
set by compare-and-set while the call is `queued`). A redelivered message finds the call
either dialed (nothing to do) or claimed; a claim that went stale is settled with its
provider first (stale_claims.py). The agent's routes are tried in order (routing.py),
skipping providers whose circuit breaker is open (provider_health.py); a create that
failed before the provider accepted it moves on to the next route. Before any of it
the call takes its concurrency slots (calls/concurrency.py): without room it waits in
`queued`, its message acked, until a freed slot is handed to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from switchboard_dialer.provider_health import Permit, ProviderHealth
from switchboard_dialer.routing import trial_order
from switchboard_dialer.stale_claims import CLAIM_MARGIN_SECONDS, QUEUED_ONLY, StaleClaims
from switchboard_shared.calls.agent_defaults import spec_for_tenant
from switchboard_shared.calls.batch_control import note_batch_dialed
from switchboard_shared.calls.callback_signing import REFERENCE_PARAMETER, callback_reference
from switchboard_shared.calls.concurrency import Admission
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.calls.outbox import transition
from switchboard_shared.domain.agents import Agent, AgentSpec, Route
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, RouteAttempt, RouteOutcome, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.observability.metrics import DIALER_IN_FLIGHT
from switchboard_shared.ports import (
    Bus,
    MessageContext,
    Provider,
    ProviderAmbiguousError,
    ProviderCallRequest,
    ProviderPermanentError,
    ProviderTransientError,
    Reject,
    RetryLater,
    Store,
    Subscription,
)
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "dialer.call-requested"
__all__ = ["CLAIM_MARGIN_SECONDS", "QUEUE", "CallDialer"]


class CallDialer(StaleClaims):
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
        self.health = ProviderHealth.from_settings(store, settings)
        self.admission = Admission(
            store,
            bus,
            provider_limits={n: ps.max_concurrent_calls for n, ps in provider_settings.items()},
            provider_rates={n: ps.calls_per_second for n, ps in provider_settings.items()},
        )

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
        if call.waiting_lane is not None:
            return  # waiting for a slot: handed on (published again) when one frees
        agent = await self._store.get_agent(call.agent)
        if agent is None or not agent.enabled:
            await self._fail(call, EndedReason.AGENT_UNAVAILABLE)
            return
        routes = [(i, r) for i, r in trial_order(agent) if r.provider in self._providers]
        if not routes:
            await self._fail(call, EndedReason.PROVIDER_NOT_CONFIGURED)
            return
        refused = await self.admission.take(call.call_id, await self.admission.call_limits(call))
        if refused is not None:
            await self.admission.wait(call, refused.lane)
            return  # handed on when a slot of that lane frees
        spec = await spec_for_tenant(self._store, call.tenant_id, agent, call.variables)
        failures: list[str] = []
        full: list[str] = []
        for position, route in routes:
            permit = await self.health.permit(route.provider)
            if permit is None:
                failures.append(f"{route.provider}: circuit breaker open")
                continue
            provider_limit = self.admission.provider_limit(route.provider)
            if provider_limit is not None and await self.admission.take(
                call.call_id, [provider_limit]
            ):
                full.append(provider_limit.lane)
                continue
            tried = await self._try_route(call, agent, spec, (position, route), permit)
            if isinstance(tried, Call):
                return  # placed, or no longer ours to place
            failures.append(tried)
            if provider_limit is not None:
                await self.admission.give_back(call.call_id, provider_limit.lane)
            call = await self._store.get_call(call_id) or call
        if full:
            # Every route that could take the call is at its provider's limit.
            await self.admission.wait(call, full[0])
            return
        # No route accepted the call before a provider could have placed it.
        if ctx.is_last_attempt:
            await self._fail(call, EndedReason.ALL_PROVIDERS_UNAVAILABLE)
            return
        # Nobody holds the call while its retry waits in the broker (its slots stay
        # taken: it is dialed next); if that retry is lost, the reconciler finds the
        # call queued and re-drives it.
        raise RetryLater("no route accepted the call: " + "; ".join(failures))

    async def _try_route(
        self,
        call: Call,
        agent: Agent,
        spec: AgentSpec,
        ranked_route: tuple[int, Route],
        permit: Permit,
    ) -> Call | str:
        """Send the create to one route. Returns the call when nothing is left to try
        (placed, failed, or not ours), else why this route failed before its provider
        accepted the call. Raises RetryLater when the answer is unknown."""
        position, route = ranked_route
        provider = self._providers[route.provider]
        async with self._limits[route.provider]:
            # Claim only once a slot is free: the claim's age must measure the provider
            # request, not the wait behind the limit, or a live claim would look stale.
            await self.admission.pace(route.provider)
            claimed = await self._claim(call, agent, route.provider, spec.max_duration_seconds)
            if claimed is None:
                return call
            call, claim = claimed, claimed.dial_claim or ""
            DIALER_IN_FLIGHT.labels(route.provider).inc()
            try:
                state = await provider.create_call(self._request(call, spec, route))
            except ProviderAmbiguousError as exc:
                await self.health.failed(permit, "a create went unanswered")
                # The claim stays: whoever looks at the call next asks this provider
                # whether it placed the call before anyone dials anywhere.
                await self._note_attempt(call, claim, position, route, RouteOutcome.AMBIGUOUS, exc)
                raise RetryLater(
                    f"provider {route.provider}: {exc}",
                    delay=self._claim_wait(call, route.provider),
                ) from exc
            except ProviderTransientError as exc:
                await self.health.failed(permit, "creates fail before being accepted")
                await self._release(call, claim, position, route, exc)
                return f"{route.provider}: {exc}"
            except ProviderPermanentError as exc:
                await self.health.succeeded(permit)  # it answered: healthy, our request is not
                log.warning("provider refused the call: %s", exc, extra={"call_id": call.call_id})
                await self._note_attempt(call, claim, position, route, RouteOutcome.REJECTED, exc)
                await self._fail(call, EndedReason.PROVIDER_REJECTED)
                return call
            finally:
                DIALER_IN_FLIGHT.labels(route.provider).dec()
        await self.health.succeeded(permit)
        attempt = _attempt(position, route, RouteOutcome.ACCEPTED)
        await self._record_dialed(
            call, route.provider, provider, state.provider_call_id, claim, agent, attempt
        )
        return call

    async def _release(
        self, call: Call, claim: str, position: int, route: Route, error: Exception
    ) -> None:
        """Give the claim up after a create the provider did not accept."""
        attempt = _attempt(position, route, RouteOutcome.UNREACHABLE, error)
        await self._store.update_call(
            call.call_id,
            CallChanges(dial_claim=None, route_attempts=[*call.route_attempts, attempt]),
            guard=CallGuard(dial_claim=claim),
        )

    async def _note_attempt(
        self,
        call: Call,
        claim: str,
        position: int,
        route: Route,
        outcome: RouteOutcome,
        error: Exception,
    ) -> None:
        attempt = _attempt(position, route, outcome, error)
        await self._store.update_call(
            call.call_id,
            CallChanges(route_attempts=[*call.route_attempts, attempt]),
            guard=CallGuard(dial_claim=claim),
        )

    async def _claim(
        self, call: Call, agent: Agent, provider_name: str, max_duration_seconds: int
    ) -> Call | None:
        """Take the call for this dialer and `provider_name`: the call as claimed (its
        `dial_claim` is this dialer's token, its max duration fixed), or None when it is
        no longer ours to dial."""
        if call.dial_claim is not None:
            held_by = self._claim_provider(call, agent) or provider_name
            if not self.claim_is_stale(call, held_by):
                # Another dialer is on it right now; look again once its claim expires.
                raise RetryLater("claimed by another dialer", delay=self._claim_wait(call, held_by))
            try:
                free = await self.settle_stale_claim(call, agent, self._providers[held_by])
            except ProviderTransientError as exc:
                raise RetryLater(f"provider lookup failed: {exc}") from exc
            if not free:
                return None
        token = uuid.uuid4().hex
        claimed = await self._store.update_call(
            call.call_id,
            CallChanges(
                dial_claim=token,
                dialing_at=utcnow(),
                provider=provider_name,
                max_duration_seconds=max_duration_seconds,
            ),
            guard=CallGuard(statuses=QUEUED_ONLY, dial_claim=call.dial_claim),
        )
        if claimed is None:
            current = await self._store.get_call(call.call_id)
            if current is not None and current.status is CallStatus.QUEUED:
                raise RetryLater("lost the claim race")
            return None
        return claimed

    def _request(self, call: Call, spec: AgentSpec, route: Route) -> ProviderCallRequest:
        provider_settings = self._settings.provider_settings()[route.provider]
        # Per attempt: a redial is a new provider call, never the earlier one deduped.
        reference = callback_reference(
            provider_settings.callback_secret.get_secret_value(), call.dial_reference
        )
        return ProviderCallRequest(
            call_id=call.dial_reference,
            to_number=call.phone,
            from_number=route.from_number or provider_settings.from_number,
            provider_agent_id=route.provider_agent_id,
            agent=spec,
            variables=call.variables,
            callback_url=(
                f"{self._settings.callback_base_url.rstrip('/')}"
                f"/v1/webhooks/providers/{route.provider}?{REFERENCE_PARAMETER}={reference}"
            ),
        )

    async def _record_dialed(
        self,
        call: Call,
        provider_name: str,
        provider: Provider,
        provider_call_id: str,
        claim: str,
        agent: Agent,
        attempt: RouteAttempt,
    ) -> None:
        dialed = await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.DIALING,
            CallChanges(
                provider=provider_name,
                provider_call_id=provider_call_id,
                watchdog_deadline=self.watchdog_deadline(call, agent),
                route_attempts=[*call.route_attempts, attempt],
                dialed_at=utcnow(),
            ),
            guard=CallGuard(dial_claim=claim),
        )
        if dialed is not None:
            return await note_batch_dialed(self._store, dialed)
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
                call.call_id,
                CallChanges(provider=provider_name, provider_call_id=provider_call_id),
            )
        log.warning("hanging up a provider call nobody wants", extra={"call_id": call.call_id})
        await provider.cancel_call(provider_call_id)

    async def _fail(self, call: Call, reason: EndedReason) -> None:
        await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.FAILED,
            CallChanges(ended_reason=reason),
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
            CallChanges(ended_reason=EndedReason.CANCELED_BY_CUSTOMER),
        )


def _attempt(
    position: int, route: Route, outcome: RouteOutcome, error: Exception | None = None
) -> RouteAttempt:
    detail = str(error)[:200] if error is not None else None
    return RouteAttempt(
        route=position, provider=route.provider, outcome=outcome, at=utcnow(), detail=detail
    )
