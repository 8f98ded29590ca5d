"""The dialer process: the call.requested consumer, the dispatcher of scheduled calls, the
concurrency slots' release and sweep, the outbox relay and the watchdog."""

from __future__ import annotations

from switchboard_dialer.batch_completion import BatchCompletion
from switchboard_dialer.dialing import CallDialer
from switchboard_dialer.dispatch import CallDispatcher
from switchboard_dialer.slots import SlotRelease, SlotSweep
from switchboard_dialer.watchdog import CallWatchdog
from switchboard_shared.calls.outbox import OutboxRelay
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.process import ServiceParts, consumer, periodic


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
    dispatcher = CallDispatcher(store, bus, dialer.admission)
    slot_release = SlotRelease(dialer.admission)
    slot_sweep = SlotSweep(store, dialer.admission, lease_seconds=settings.slot_lease_seconds)
    completion = BatchCompletion(store, bus)
    return ServiceParts(
        name="dialer",
        readiness_details={"provider_breakers": dialer.health.states},
        workers=[
            consumer(components, dialer.subscription()),
            consumer(components, slot_release.subscription()),
            periodic(
                PeriodicTask(
                    "slot-sweep", slot_sweep.run_once, settings.slot_sweep_interval_seconds
                )
            ),
            periodic(
                PeriodicTask("dispatcher", dispatcher.run_once, settings.dispatch_interval_seconds)
            ),
            periodic(
                PeriodicTask(
                    "batch-completion",
                    completion.run_once,
                    settings.batch_completion_interval_seconds,
                )
            ),
            periodic(
                PeriodicTask("outbox-relay", relay.run_once, settings.outbox_interval_seconds)
            ),
            periodic(
                PeriodicTask("watchdog", watchdog.run_once, settings.watchdog_interval_seconds)
            ),
        ],
    )
