"""The webhook-ingest process: provider callback endpoints."""

from __future__ import annotations

from switchboard_ingest.callbacks import CallbackIngest
from switchboard_ingest.routes import router
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.process import ServiceParts


def parts(components: Components) -> ServiceParts:
    ingest = CallbackIngest(
        components.store, components.bus, components.providers, components.settings
    )
    return ServiceParts(name="webhook-ingest", routers=[router], state={"ingest": ingest})
