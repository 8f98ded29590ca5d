"""Providers' session webhooks (ElevenLabs' `post_call_transcription`): authenticated and
read by the provider's session adapter, applied by `sessions.provider_callbacks`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from switchboard_shared.domain.errors import MalformedInput, NotAuthenticated, NotFound
from switchboard_shared.observability.metrics import CALLBACKS_RECEIVED
from switchboard_shared.ports import Bus, InvalidCallback, MalformedCallback, SessionStore
from switchboard_shared.ports.session_provider import SessionProvider
from switchboard_shared.sessions.provider_callbacks import (
    SessionCallbackOutcome,
    apply_session_callback,
)

log = logging.getLogger(__name__)


class SessionCallbackIngest:
    def __init__(
        self, store: SessionStore, bus: Bus, providers: Mapping[str, SessionProvider]
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers

    async def receive(self, provider_name: str, headers: Mapping[str, str], body: bytes) -> str:
        """Verify, read and apply one webhook; NotFound for a provider without session
        webhooks, NotAuthenticated for a bad signature, MalformedInput for a body that
        cannot be read. A webhook about no session of ours is acknowledged (`ignored`)."""
        provider = self._providers.get(provider_name)
        if provider is None:
            raise NotFound(
                "unknown_provider", f"no provider named {provider_name!r} serves sessions"
            )
        try:
            callback = provider.parse_callback(headers, body)
        except InvalidCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            log.warning("rejected session webhook from %s: %s", provider_name, exc)
            raise NotAuthenticated("invalid_signature", str(exc)) from exc
        except MalformedCallback as exc:
            CALLBACKS_RECEIVED.labels(provider_name, "rejected").inc()
            raise MalformedInput("malformed_callback", str(exc)) from exc
        if callback is None:
            outcome = SessionCallbackOutcome.IGNORED
        else:
            outcome = await apply_session_callback(self._store, self._bus, provider_name, callback)
        CALLBACKS_RECEIVED.labels(provider_name, outcome).inc()
        return outcome
