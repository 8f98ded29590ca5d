"""Provider callbacks into call state: authenticate, find the call, apply, publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from enum import StrEnum

from opentelemetry import propagate, trace

from switchboard_shared import callback_signing
from switchboard_shared.adapters.providers.http import json_object
from switchboard_shared.adapters.providers.simulator import parse_call
from switchboard_shared.call_updates import apply_provider_state, watchdog_deadline
from switchboard_shared.callback_signing import read_callback_reference
from switchboard_shared.domain.calls import Call
from switchboard_shared.http_errors import ApiError
from switchboard_shared.logs import call_scope
from switchboard_shared.metrics import CALLBACKS_RECEIVED
from switchboard_shared.ports import (
    Bus,
    InvalidCallback,
    MalformedCallback,
    Provider,
    ProviderCallState,
    Store,
)
from switchboard_shared.settings import Settings

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
            raise ApiError(404, "unknown_provider", f"no provider named {provider_name!r}")
        try:
            state = provider.parse_callback(headers, body)
        except InvalidCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            log.warning("rejected callback from %s: %s", provider_name, exc)
            raise ApiError(401, "invalid_signature", str(exc)) from exc
        except MalformedCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            raise ApiError(400, "malformed_callback", str(exc)) from exc
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
            raise ApiError(
                401, "invalid_signature", "the callback signature matches no provider secret"
            )
        try:
            # The simulator's callbacks are the generic format: one parser for both.
            state = parse_call(json_object(body), "provider_call_id")
        except MalformedCallback as exc:
            CALLBACKS_RECEIVED.labels(sender, "rejected").inc()
            raise ApiError(400, "malformed_callback", str(exc)) from exc
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
            raise ApiError(
                404, "unknown_call", f"no call has provider call id {state.provider_call_id!r}"
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
                expected={"provider_call_id": None} if also else None,
            )
            if updated is None and also:
                # The dialer recorded the call meanwhile: apply as to any known call.
                updated = await apply_provider_state(self._store, self._bus, call, state)
        outcome = CallbackOutcome.APPLIED if updated else CallbackOutcome.DUPLICATE
        CALLBACKS_RECEIVED.labels(provider_name, outcome).inc()
        log.info("callback %s: %s", outcome, state.status, extra={"call_id": call.call_id})
        return outcome

    async def _referenced_call(
        self, provider_name: str, state: ProviderCallState, reference: str | None
    ) -> tuple[Call | None, dict[str, object]]:
        """The call a signed `reference` names, when it is this provider's call or has no
        provider call yet (its dialer has not recorded it, or died first); with the
        fields that attach the provider call to it. (None, {}) otherwise."""
        settings = self._settings.provider_settings().get(provider_name)
        if reference is None or settings is None:
            return None, {}
        call_id = read_callback_reference(settings.callback_secret.get_secret_value(), reference)
        if call_id is None:
            log.warning("callback from %s with a reference we did not sign", provider_name)
            return None, {}
        call = await self._store.get_call(call_id)
        if call is None:
            return None, {}
        if call.provider_call_id == state.provider_call_id and call.provider == provider_name:
            return call, {}
        if call.provider_call_id is not None:
            return None, {}  # another provider call of ours: found by its own id, if at all
        also: dict[str, object] = {
            "provider": provider_name,
            "provider_call_id": state.provider_call_id,
        }
        agent = await self._store.get_agent(call.agent)
        if agent is not None and not state.status.is_terminal:
            also["watchdog_deadline"] = watchdog_deadline(
                agent, self._settings.watchdog_grace_seconds
            )
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
