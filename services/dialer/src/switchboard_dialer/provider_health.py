"""The providers' circuit breakers as one dialer sees and moves them.

The shared state is read from the store at most once a second per provider (a dial
does not wait on a store read); outcomes are counted here, per replica; every change of
state is written with a compare-and-set, logged, and shown in a metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from switchboard_shared.domain.breakers import (
    BreakerPolicy,
    BreakerState,
    FailureWindow,
    ProviderBreaker,
    closed,
    decide,
    opened,
)
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.observability.metrics import PROVIDER_BREAKER_STATE
from switchboard_shared.ports import BreakerStore
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Permit:
    """Leave to send one create; a probe's outcome decides the half-open breaker."""

    provider: str
    probe: bool


@dataclass
class _Seen:
    breaker: ProviderBreaker
    read_at: float  # monotonic


class ProviderHealth:
    def __init__(
        self,
        store: BreakerStore,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._windows: dict[str, FailureWindow] = {}

    @classmethod
    def from_settings(cls, store: BreakerStore, settings: Settings) -> ProviderHealth:
        timeouts = [p.timeout_seconds for p in settings.provider_settings().values()]
        slowest = max(timeouts, default=30.0)
        return cls(
            store,
            BreakerPolicy(
                failure_threshold=settings.breaker_failure_threshold,
                failure_ratio=settings.breaker_failure_ratio,
                window=timedelta(seconds=settings.breaker_window_seconds),
                cool_down=timedelta(seconds=settings.breaker_cool_down_seconds),
                # A probe is a create: it settles within the provider timeout, or its
                # dialer died.
                probe_timeout=timedelta(seconds=slowest * 2),
            ),
        )

    async def permit(self, provider: str) -> Permit | None:
        """Leave to send a create now; None while the breaker refuses."""
        decision = decide(await self._breaker(provider), self._policy, self._clock())
        if not decision.allowed:
            return None
        if decision.claim is None:
            return Permit(provider, probe=False)
        if await self._save(decision.claim) is None:
            return None  # another dialer took the probe first
        return Permit(provider, probe=True)

    async def succeeded(self, permit: Permit) -> None:
        """The provider accepted a create (or answered it, refusing the request itself)."""
        self._window(permit.provider).record(self._clock(), failed=False)
        breaker = await self._breaker(permit.provider, fresh=permit.probe)
        if (change := closed(breaker, self._clock())) is not None:
            await self._save(change)

    async def failed(self, permit: Permit, reason: str) -> None:
        """A create failed before (or without knowing whether) the provider accepted it."""
        window = self._window(permit.provider)
        tripped = window.record(self._clock(), failed=True)
        if not (tripped or permit.probe):
            return
        breaker = await self._breaker(permit.provider, fresh=True)
        if breaker.state is BreakerState.OPEN:
            return  # another replica opened it meanwhile
        if await self._save(opened(breaker, self._clock(), reason)) is not None:
            window.clear()

    async def states(self) -> dict[str, str]:
        """Each known provider's breaker state, for `/readyz` details."""
        return {b.provider: b.state.value for b in await self._store.list_breakers()}

    # --- the shared state ------------------------------------------------------------------
    async def _breaker(self, provider: str, *, fresh: bool = False) -> ProviderBreaker:
        seen = self._seen.get(provider)
        if fresh or seen is None or time.monotonic() - seen.read_at >= CACHE_SECONDS:
            stored = await self._store.get_breaker(provider)
            seen = _Seen(stored or ProviderBreaker(provider=provider), time.monotonic())
            self._seen[provider] = seen
            _show(seen.breaker)
        return seen.breaker

    async def _save(self, change: ProviderBreaker) -> ProviderBreaker | None:
        before = self._seen.get(change.provider)
        saved = await self._store.save_breaker(change)
        if saved is None:
            await self._breaker(change.provider, fresh=True)  # lost a race: see the winner's
            return None
        self._seen[change.provider] = _Seen(saved, time.monotonic())
        _show(saved)
        was = before.breaker.state if before else BreakerState.CLOSED
        log.warning(
            "provider %s circuit breaker: %s -> %s%s",
            saved.provider,
            was.value,
            saved.state.value,
            f" ({saved.last_error})" if saved.state is BreakerState.OPEN else "",
            extra={"provider": saved.provider, "breaker_state": saved.state.value},
        )
        return saved

    def _window(self, provider: str) -> FailureWindow:
        return self._windows.setdefault(provider, FailureWindow(self._policy))


def _show(breaker: ProviderBreaker) -> None:
    for state in BreakerState:
        PROVIDER_BREAKER_STATE.labels(breaker.provider, state.value).set(
            1 if state is breaker.state else 0
        )
