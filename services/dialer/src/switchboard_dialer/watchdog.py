"""Every accepted call reaches a terminal status, even when its provider goes quiet.

A call still live past its agent's max duration plus a grace period is settled: the
provider is asked (`get_call`) and a terminal answer is applied; otherwise the call ends
`failed` with `ended_reason: "provider_timeout"`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from switchboard_shared.call_updates import apply_provider_state
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.metrics import WATCHDOG_ENDED
from switchboard_shared.outbox import transition
from switchboard_shared.ports import Bus, Provider, ProviderError, Store

log = logging.getLogger(__name__)

LIVE_STATUSES = frozenset({CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS})
DEFAULT_MAX_DURATION_SECONDS = 600


class CallWatchdog:
    def __init__(
        self, store: Store, bus: Bus, providers: dict[str, Provider], *, grace_seconds: float
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers
        self._grace = timedelta(seconds=grace_seconds)

    async def run_once(self) -> int:
        """Settle every overdue live call; returns how many were settled."""
        now = utcnow()
        candidates = await self._store.find_calls(
            statuses=LIVE_STATUSES, updated_before=now - self._grace, limit=500
        )
        settled = 0
        for call in candidates:
            if now >= await self._deadline(call):
                settled += await self._settle(call)
        return settled

    async def _deadline(self, call: Call) -> datetime:
        agent = await self._store.get_agent(call.agent)
        max_duration = agent.max_duration_seconds if agent else DEFAULT_MAX_DURATION_SECONDS
        started = call.dialing_at or call.created_at
        return started + timedelta(seconds=max_duration) + self._grace

    async def _settle(self, call: Call) -> int:
        provider = self._providers.get(call.provider or "")
        if provider is not None and call.provider_call_id:
            try:
                state = await provider.get_call(call.provider_call_id)
            except ProviderError as exc:
                log.warning(
                    "watchdog could not ask the provider: %s", exc, extra={"call_id": call.call_id}
                )
            else:
                if state.status.is_terminal:
                    if await apply_provider_state(self._store, self._bus, call, state):
                        WATCHDOG_ENDED.labels("provider_answer").inc()
                        return 1
                    return 0
        ended = await transition(
            self._store,
            self._bus,
            call.call_id,
            CallStatus.FAILED,
            {"ended_reason": "provider_timeout"},
        )
        if ended is None:
            return 0
        WATCHDOG_ENDED.labels("provider_timeout").inc()
        log.warning(
            "call ended by the watchdog: no terminal callback", extra={"call_id": call.call_id}
        )
        return 1
