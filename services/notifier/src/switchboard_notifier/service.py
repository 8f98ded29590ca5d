"""The notifier process: customer webhook delivery, its store-driven retries and the
sweep of completions whose event was lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from switchboard_notifier.handler import WebhookNotifier
from switchboard_notifier.scheduler import DeliveryScheduler, NotifySweep
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.process import ServiceParts, Worker, consumer, periodic


def parts(components: Components) -> ServiceParts:
    settings, store = components.settings, components.store
    notifier = WebhookNotifier(store, components.bus, settings)
    scheduler = DeliveryScheduler(store, notifier, settings)
    sweep = NotifySweep(store, notifier, settings)
    interval = settings.delivery_poll_interval_seconds
    return ServiceParts(
        name="notifier",
        workers=[
            consumer(components, notifier.subscription()),
            draining(
                PeriodicTask("webhook-retries", scheduler.run_once, interval), scheduler.drain
            ),
            draining(PeriodicTask("notify-sweep", sweep.run_once, interval), sweep.drain),
        ],
        closers=[notifier.close],
    )


def draining(task: PeriodicTask, drain: Callable[[], Awaitable[None]]) -> Worker:
    """`periodic(task)` whose stop first lets the round under way finish (`drain`):
    webhook attempts in flight on SIGTERM are recorded, not cut short."""
    worker = periodic(task)

    async def stop() -> None:
        await drain()
        await worker.stop()

    return Worker(worker.name, worker.start, stop)
