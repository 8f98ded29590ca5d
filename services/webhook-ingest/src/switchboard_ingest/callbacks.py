"""Provider callbacks into call state: authenticate, find the call, apply, publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from enum import StrEnum

from opentelemetry import propagate, trace

from switchboard_shared.adapters.providers.http import json_object
from switchboard_shared.adapters.providers.simulator import parse_call
from switchboard_shared.calls import callback_signing
from switchboard_shared.calls.callback_signing import read_callback_reference
from switchboard_shared.calls.provider_updates import apply_provider_state, watchdog_deadline
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, read_dial_reference, utcnow
from switchboard_shared.domain.errors import MalformedInput, NotAuthenticated, NotFound
from switchboard_shared.observability.logs import call_scope
from switchboard_shared.observability.metrics import CALLBACKS_RECEIVED
from switchboard_shared.ports import (
    Bus,
    InvalidCallback,
    MalformedCallback,
    Provider,
    ProviderCallState,
    Store,
)
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class CallbackOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # late or repeated: acknowledged, nothing changed


# A fast provider can call back before the dialer has stored the provider call id it
# just got from the create request: an authenticated callback for an unknown id looks
# again after each of these pauses (3 s in all) before it is refused.
_LOOKUP_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.45)


class CallbackIngest:
    def __init__(
        self, store: Store, bus: Bus, providers: dict[str, Provider], settings: Settings
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers
        self._settings = settings

    async def native(
        self,
        provider_name: str,
        headers: Mapping[str, str],
        body: bytes,
        reference: str | None = None,
    ) -> str:
        """A callback in `provider_name`'s own format, verified by its adapter;
        `reference` is the `ref` of the callback URL the dialer gave the provider."""
        provider = self._providers.get(provider_name)
        if provider is None:
            raise NotFound("unknown_provider", f"no provider named {provider_name!r}")
        try:
            state = provider.parse_callback(headers, body)
        except InvalidCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            log.warning("rejected callback from %s: %s", provider_name, exc)
            raise NotAuthenticated("invalid_signature", str(exc)) from exc
        except MalformedCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            raise MalformedInput("malformed_callback", str(exc)) from exc
        return await self.apply(provider_name, state, reference)

    async def generic(
        self, headers: Mapping[str, str], body: bytes, reference: str | None = None
    ) -> str:
        """The normalized callback of the public contract, signed with Switchboard's
        scheme by any configured provider's callback secret; the secret that verifies
        says which provider sent it, which scopes the provider call id."""
        tolerance = self._settings.callback_tolerance_seconds
        sender: str | None = None
        for name, provider_settings in self._settings.provider_settings().items():
            secret = provider_settings.callback_secret.get_secret_value()
            try:
                callback_signing.verify(secret, headers, body, tolerance)
            except InvalidCallback:
                continue
            sender = name
            break
        if sender is None:
            CALLBACKS_RECEIVED.labels("generic", "rejected").inc()
            raise NotAuthenticated(
                "invalid_signature", "the callback signature matches no provider secret"
            )
        try:
            # The simulator's callbacks are the generic format: one parser for both.
            state = parse_call(json_object(body), "provider_call_id")
        except MalformedCallback as exc:
            CALLBACKS_RECEIVED.labels(sender, "rejected").inc()
            raise MalformedInput("malformed_callback", str(exc)) from exc
        return await self.apply(sender, state, reference)

    async def apply(
        self, provider_name: str, state: ProviderCallState, reference: str | None = None
    ) -> str:
        call, also = await self._referenced_call(provider_name, state, reference)
        if call is None:
            call = await self._find_call(provider_name, state.provider_call_id)
        if call is None:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            log.warning(
                "callback for an unknown call from %s: provider call id %r",
                provider_name,
                state.provider_call_id,
            )
            raise NotFound(
                "unknown_call", f"no call has provider call id {state.provider_call_id!r}"
            )
        # Rejoin the trace of the request that created the call.
        parent = propagate.extract(call.trace_context)
        with (
            call_scope(call.call_id),
            tracer.start_as_current_span("apply provider callback", context=parent) as span,
        ):
            span.set_attribute("switchboard.call_id", call.call_id)
            span.set_attribute("switchboard.status", str(state.status))
            updated = await apply_provider_state(
                self._store,
                self._bus,
                call,
                state,
                also=also,
                # Attach the provider call only to a call that has none yet.
                guard=CallGuard(provider_call_id=None) if also is not None else None,
            )
            if updated is None and also is not None:
                # The dialer recorded the call meanwhile: apply as to any known call.
                updated = await apply_provider_state(self._store, self._bus, call, state)
        outcome = CallbackOutcome.APPLIED if updated else CallbackOutcome.DUPLICATE
        CALLBACKS_RECEIVED.labels(provider_name, outcome).inc()
        log.info("callback %s: %s", outcome, state.status, extra={"call_id": call.call_id})
        return outcome

    async def _referenced_call(
        self, provider_name: str, state: ProviderCallState, reference: str | None
    ) -> tuple[Call | None, CallChanges | None]:
        """The call a signed `reference` names, when it is this provider's call or has no
        provider call yet (its dialer has not recorded it, or died first); with the
        changes that attach the provider call to it (None: attached already). (None,
        None) otherwise."""
        settings = self._settings.provider_settings().get(provider_name)
        if reference is None or settings is None:
            return None, None
        signed = read_callback_reference(settings.callback_secret.get_secret_value(), reference)
        if signed is None:
            log.warning("callback from %s with a reference we did not sign", provider_name)
            return None, None
        call_id, attempt = read_dial_reference(signed)
        call = await self._store.get_call(call_id)
        if call is None or call.attempt != attempt:
            return None, None  # none, or an earlier attempt's late callback: not this dial
        if call.provider_call_id == state.provider_call_id and call.provider == provider_name:
            return call, None
        if call.provider_call_id is not None:
            return None, None  # another provider call of ours: found by its own id, if at all
        also = CallChanges(
            provider=provider_name,
            provider_call_id=state.provider_call_id,
            dialed_at=call.dialing_at or utcnow(),  # the create that reached the provider
        )
        if not state.status.is_terminal:
            # The agent only for a call claimed before its max duration was recorded.
            agent = None
            if call.max_duration_seconds is None:
                agent = await self._store.get_agent(call.agent)
            deadline = watchdog_deadline(call, agent, self._settings.watchdog_grace_seconds)
            also = also.plus(CallChanges(watchdog_deadline=deadline))
        log.info("callback attached to its call by our reference", extra={"call_id": call_id})
        return call, also

    async def _find_call(self, provider_name: str, provider_call_id: str) -> Call | None:
        call = await self._store.find_call_by_provider_id(provider_name, provider_call_id)
        for pause in _LOOKUP_PAUSES:
            if call is not None:
                break
            await asyncio.sleep(pause)
            call = await self._store.find_call_by_provider_id(provider_name, provider_call_id)
        return call
