"""The dialer process: the call.requested consumer, the outbox relay and the watchdog."""

from __future__ import annotations

from switchboard_dialer.dialing import CallDialer
from switchboard_dialer.watchdog import CallWatchdog
from switchboard_shared.bootstrap import Components
from switchboard_shared.outbox import OutboxRelay
from switchboard_shared.periodic import PeriodicTask
from switchboard_shared.runtime import ServiceParts, consumer, periodic


def parts(components: Components) -> ServiceParts:
    settings = components.settings
    store, bus, providers = components.store, components.bus, components.providers
    dialer = CallDialer(store, bus, providers, settings)
    relay = OutboxRelay(store, bus, min_age=settings.outbox_min_age_seconds)
    watchdog = CallWatchdog(
        store,
        bus,
        providers,
        dialer=dialer,
        queued_after_seconds=settings.reconcile_queued_after_seconds,
    )
    return ServiceParts(
        name="dialer",
        workers=[
            consumer(components, dialer.subscription()),
            periodic(
                PeriodicTask("outbox-relay", relay.run_once, settings.outbox_interval_seconds)
            ),
            periodic(
                PeriodicTask("watchdog", watchdog.run_once, settings.watchdog_interval_seconds)
            ),
        ],
    )
