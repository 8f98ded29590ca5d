"""The api process: the public REST API."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from switchboard_api.app import create_app
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.operator import load_agents_file
from switchboard_shared.runtime.process import ServiceParts

log = logging.getLogger(__name__)


def parts(components: Components) -> ServiceParts:
    app = create_app(
        settings=components.settings,
        store=components.store,
        bus=components.bus,
        providers=components.providers,
    )
    return ServiceParts(name="api", root_app=app, startup=[_agents_loader(components)])


def _agents_loader(components: Components) -> Callable[[], Awaitable[None]]:
    """Upserts SWITCHBOARD_AGENTS_FILE at start-up, so a deployment's agents are code."""

    async def start() -> None:
        path = components.settings.agents_file
        if path:
            count = await load_agents_file(components.store, path)
            log.info("loaded %d agents from %s", count, path)

    return start
