"""The api process: the public REST API."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from switchboard_api.app import create_app
from switchboard_shared.calls.outbox import DeferredPublisher
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.operator import load_agents_file
from switchboard_shared.runtime.process import ServiceParts, Worker

log = logging.getLogger(__name__)


def parts(components: Components) -> ServiceParts:
    app = create_app(
        settings=components.settings,
        store=components.store,
        bus=components.bus,
        providers=components.providers,
    )
    publisher: DeferredPublisher = app.state.publisher
    return ServiceParts(
        name="api",
        root_app=app,
        startup=[_agents_loader(components)],
        # Stopped once the server has answered its last request, before the bus closes.
        workers=[Worker("deferred-publisher", _nothing_to_start, publisher.flush)],
    )


async def _nothing_to_start() -> None:
    """The publisher starts on its first call."""


def _agents_loader(components: Components) -> Callable[[], Awaitable[None]]:
    """Upserts SWITCHBOARD_AGENTS_FILE at start-up, so a deployment's agents are code."""

    async def start() -> None:
        path = components.settings.agents_file
        if path:
            count = await load_agents_file(components.store, path)
            log.info("loaded %d agents from %s", count, path)

    return start
