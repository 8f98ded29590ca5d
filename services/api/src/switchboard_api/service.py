"""The api process: the public REST API."""

from __future__ import annotations

import logging

from switchboard_api import admin
from switchboard_api.app import create_app
from switchboard_api.routes import deliveries, webhooks
from switchboard_shared.bootstrap import Components
from switchboard_shared.runtime import ServiceParts, Worker

log = logging.getLogger(__name__)


def parts(components: Components) -> ServiceParts:
    app = create_app(settings=components.settings, store=components.store, bus=components.bus)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    return ServiceParts(name="api", root_app=app, workers=[_agents_loader(components)])


def _agents_loader(components: Components) -> Worker:
    """Upserts SWITCHBOARD_AGENTS_FILE at start-up, so a deployment's agents are code."""

    async def start() -> None:
        path = components.settings.agents_file
        if path:
            count = await admin.load_agents_file(components.store, path)
            log.info("loaded %d agents from %s", count, path)

    async def stop() -> None:
        return None

    return Worker("agents-loader", start, stop)
