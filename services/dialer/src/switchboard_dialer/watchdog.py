"""Every accepted call reaches a terminal status, whatever was lost on the way.

The store, not the broker, remembers what each call still needs; each round covers
every non-terminal status:
- `queued` and unchanged for `reconcile_queued_after_seconds` (its `call.requested`, or
  a retry of it, may have been lost in the broker; or its dialer died mid-request): a
  stale dial claim is first settled with the provider (`CallDialer.redrive`), then the
  `call.requested` is republished, so a call never dialed is dialed once.
- live past its `watchdog_deadline` (set when the provider accepted the call: the
  agent's max duration plus a grace period): the provider is asked (`get_call`) and a
  terminal answer is applied; otherwise the call ends `failed` with
  `ended_reason: "provider_timeout"`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from switchboard_dialer.dialing import CallDialer
from switchboard_shared.calls.outbox import transition
from switchboard_shared.calls.provider_updates import apply_provider_state
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import LIVE_STATUSES, Call, CallStatus, utcnow
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.observability.metrics import WATCHDOG_ENDED
from switchboard_shared.ports import Bus, Provider, ProviderError, Store

log = logging.getLogger(__name__)


class CallWatchdog:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        providers: dict[str, Provider],
        *,
        dialer: CallDialer | None = None,
        queued_after_seconds: float = 60.0,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers
        self._dialer = dialer
        self._queued_after = timedelta(seconds=queued_after_seconds)
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """One round: re-drive stuck queued calls, settle overdue live ones; returns how
        many calls were acted on."""
        return await self.redrive_queued() + await self.settle_overdue()

    async def redrive_queued(self) -> int:
        """Re-drive every queued call unchanged for `queued_after_seconds`; a call whose
        event the outbox relay still has to publish is left to it."""
        if self._dialer is None:
            return 0
        redriven = 0
        stuck = await self._store.find_calls(
            statuses=frozenset({CallStatus.QUEUED}),
            updated_before=utcnow() - self._queued_after,
            # A call waiting for a concurrency slot is not stuck: a freed slot wakes it.
            waiting=False,
            limit=self._batch_size,
        )
        for call in stuck:
            if call.publish_pending:
                continue
            try:
                acted = await self._dialer.redrive(call)
            except ProviderError as exc:
                log.warning(
                    "could not reconcile a queued call: %s", exc, extra={"call_id": call.call_id}
                )
                continue
            if acted:
                redriven += 1
                WATCHDOG_ENDED.labels("redriven").inc()
                log.info("re-drove a queued call", extra={"call_id": call.call_id})
        return redriven

    async def settle_overdue(self) -> int:
        """Settle every live call past its `watchdog_deadline`; returns how many were
        settled. Every call the query returns is overdue, so a crowd of long calls still
        inside their deadline never hides an overdue one."""
        settled = 0
        while True:
            overdue = await self._store.find_calls(
                statuses=LIVE_STATUSES, deadline_before=utcnow(), limit=self._batch_size
            )
            round_settled = 0
            for call in overdue:
                round_settled += await self._settle(call)
            settled += round_settled
            # A full batch may hide more; stop when it was the last, or nothing moved.
            if len(overdue) < self._batch_size or round_settled == 0:
                return settled

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
            CallChanges(ended_reason=EndedReason.PROVIDER_TIMEOUT),
        )
        if ended is None:
            return 0
        WATCHDOG_ENDED.labels("provider_timeout").inc()
        log.warning(
            "call ended by the watchdog: no terminal callback", extra={"call_id": call.call_id}
        )
        return 1
