"""The webhook-ingest process: provider callback endpoints, for calls and sessions."""

from __future__ import annotations

from switchboard_ingest.callbacks import CallbackIngest
from switchboard_ingest.routes import router
from switchboard_ingest.session_callbacks import SessionCallbackIngest
from switchboard_shared.adapters.providers.convai import build_session_providers
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.process import ServiceParts


def parts(components: Components) -> ServiceParts:
    ingest = CallbackIngest(
        components.store, components.bus, components.providers, components.settings
    )
    settings = components.settings
    session_providers = build_session_providers(settings.simulator, settings.elevenlabs)
    sessions = SessionCallbackIngest(components.store, components.bus, session_providers)
    return ServiceParts(
        name="webhook-ingest",
        routers=[router],
        state={"ingest": ingest, "session_ingest": sessions},
        closers=[p.close for p in session_providers.values()],
    )
