"""The api process: the public REST API."""

from __future__ import annotations

from switchboard_api.app import create_app
from switchboard_api.routes import deliveries, webhooks
from switchboard_shared.bootstrap import Components
from switchboard_shared.runtime import ServiceParts


def parts(components: Components) -> ServiceParts:
    app = create_app(settings=components.settings, store=components.store, bus=components.bus)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    return ServiceParts(name="api", root_app=app)
