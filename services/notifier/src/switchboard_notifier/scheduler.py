"""The notifier's periodic workers: webhook retries and completions, driven by the store.

The broker forgets: a message waiting in a TTL retry queue when RabbitMQ stops is lost.
So the store schedules every webhook retry (`Delivery.next_attempt_at`) and remembers
every ended call whose `call.completed` has not produced its deliveries yet
(`Call.notify_pending`); these two loops act on what it remembers, whatever happened to
the messages.

- `DeliveryScheduler` claims the due pending deliveries (each under a lease, so two
  notifiers never attempt the same one and a notifier that dies mid-attempt only delays
  it), makes one attempt at each, at most `notifier_prefetch` at a time, and records the
  outcome and the next due time; after the schedule's last delay a delivery ends
  `failed`.
- `NotifySweep` takes the ended calls still `notify_pending` some time after they ended
  (their event was lost, or dead-lettered) and handles each as if its `call.completed`
  had arrived: `events_for(call)` rebuilds the same events (its final attempt's
  `call.attempt_ended` and its `call.completed`), with the same ids, so a delivery that
  exists already is not made twice.

On SIGTERM each loop stops taking work and lets the attempts under way finish and be
recorded (`drain`); an attempt cut short anyway (a kill) is made again when its lease
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

from switchboard_notifier.handler import DeliveryStore, WebhookNotifier
from switchboard_shared.calls.outbox import events_for
from switchboard_shared.domain.calls import TERMINAL_STATUSES, Call, utcnow
from switchboard_shared.domain.sessions import Session
from switchboard_shared.domain.webhooks import Delivery
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.sessions.lifecycle import ended_event

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Rounds:
    """Whether a loop's round is under way, so a graceful stop can wait for it."""

    def __init__(self) -> None:
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def round(self) -> AsyncIterator[None]:
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    async def drain(self, within: float) -> None:
        """Take no more work; wait up to `within` seconds for the round under way."""
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)


class DeliveryScheduler:
    """Makes the webhook attempts the store says are due. Run it with `PeriodicTask`
    every `delivery_poll_interval_seconds`; `drain` before stopping it."""

    def __init__(
        self,
        store: DeliveryStore,
        notifier: WebhookNotifier,
        settings: Settings,
        *,
        batch_size: int | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._batch_size = batch_size or settings.notifier_prefetch
        self._rounds = _Rounds()
        self._drain_timeout = settings.webhook_timeout_seconds + 5

    async def run_once(self) -> int:
        """Attempt every delivery due now, a batch at a time; returns how many."""
        attempted = 0
        async with self._rounds.round():
            while not self._rounds.stopping:
                now = utcnow()
                claimed = await self._store.claim_due_deliveries(
                    now, now + self._lease, self._batch_size
                )
                await asyncio.gather(*(self._retry(delivery) for delivery in claimed))
                attempted += len(claimed)
                if len(claimed) < self._batch_size:
                    break
        return attempted

    async def drain(self) -> None:
        """Claim nothing more; let the attempts under way finish and be recorded."""
        await self._rounds.drain(self._drain_timeout)

    async def _retry(self, delivery: Delivery) -> None:
        try:
            await self._notifier.retry(delivery)
        except Exception:
            # Not recorded: the delivery comes due again when its lease ends.
            log.exception(
                "scheduled webhook attempt failed",
                extra={"call_id": delivery.call_id, "delivery_id": delivery.delivery_id},
            )


class NotifySweep:
    """Delivers the completions (of calls and sessions) whose event never reached the
    notifier. Run it with `PeriodicTask`; `drain` before stopping it."""

    def __init__(
        self,
        store: DeliveryStore,
        notifier: WebhookNotifier,
        settings: Settings,
        *,
        batch_size: int = 100,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._after = timedelta(seconds=settings.notify_sweep_after_seconds)
        self._concurrency = settings.notifier_prefetch
        self._batch_size = batch_size
        self._rounds = _Rounds()
        self._drain_timeout = settings.webhook_timeout_seconds + 5

    async def run_once(self) -> int:
        """Handle the ended calls and sessions still waiting for their deliveries;
        returns how many were handled."""
        if self._rounds.stopping:
            return 0
        async with self._rounds.round():
            calls = await self._store.find_calls(
                statuses=TERMINAL_STATUSES,
                notify_pending=True,
                updated_before=utcnow() - self._after,
                limit=self._batch_size,
            )
            sessions = await self._store.find_sessions(
                notify_pending=True,
                updated_before=utcnow() - self._after,
                limit=self._batch_size,
            )
            jobs: list[Callable[[], Awaitable[bool]]] = [partial(self._sweep, c) for c in calls]
            jobs += [partial(self._sweep_session, s) for s in sessions]
            done = await _bounded(self._concurrency, jobs)
        return sum(done)

    async def drain(self) -> None:
        """Sweep nothing more; let the deliveries under way finish and be recorded."""
        await self._rounds.drain(self._drain_timeout)

    async def _sweep(self, call: Call) -> bool:
        try:
            # The final attempt's `call.attempt_ended` too: the same events, the same ids.
            for event in events_for(call):
                await self._notifier.deliver(event)
        except Exception:
            log.exception(
                "could not deliver an ended call's event", extra={"call_id": call.call_id}
            )
            return False
        log.info(
            "delivered an ended call whose event never arrived", extra={"call_id": call.call_id}
        )
        return True

    async def _sweep_session(self, session: Session) -> bool:
        try:
            await self._notifier.deliver(ended_event(session))
        except Exception:
            log.exception(
                "could not deliver an ended session's event",
                extra={"session_id": session.session_id},
            )
            return False
        log.info(
            "delivered an ended session whose event never arrived",
            extra={"session_id": session.session_id},
        )
        return True


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run `jobs`, at most `limit` at a time."""
    semaphore = asyncio.Semaphore(max(limit, 1))

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))
