"""The webhook-ingest process: provider callback endpoints."""

from __future__ import annotations

from switchboard_ingest.callbacks import CallbackIngest
from switchboard_ingest.routes import create_router
from switchboard_shared.bootstrap import Components
from switchboard_shared.runtime import ServiceParts


def parts(components: Components) -> ServiceParts:
    ingest = CallbackIngest(
        components.store, components.bus, components.providers, components.settings
    )
    return ServiceParts(name="webhook-ingest", routers=[create_router(ingest)])
