"""The media-edge process: browsers' session sockets relayed to the providers (`/media`),
and the sessions' timeout sweep. Stateless between sockets: any replica serves any
session (the store holds sessions and used join tokens)."""

from __future__ import annotations

import gc

from switchboard_media_edge.routes import router
from switchboard_shared.adapters.providers.convai import build_session_providers
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.process import ServiceParts, periodic
from switchboard_shared.sessions.relay import SessionRelay
from switchboard_shared.sessions.timeouts import SessionTimeoutSweep


def parts(components: Components) -> ServiceParts:
    settings = components.settings
    providers = build_session_providers(settings.simulator, settings.elevenlabs)
    relay = SessionRelay(components.store, components.bus, providers, settings)
    sweep = SessionTimeoutSweep(components.store, components.bus)
    return ServiceParts(
        name="media-edge",
        routers=[router],
        state={"session_relay": relay},
        startup=[_freeze_start_up_objects],
        workers=[
            periodic(
                PeriodicTask(
                    "session-timeouts", sweep.run_once, settings.session_sweep_interval_seconds
                )
            )
        ],
        closers=[p.close for p in providers.values()],
    )


async def _freeze_start_up_objects() -> None:
    """Keep what start-up made (modules, settings, routes) out of the garbage collector's
    full collections: with hundreds of sessions relaying, each one scanned the whole
    heap and held every socket for tens of milliseconds (bench/RESULTS.md, sessions)."""
    gc.freeze()
