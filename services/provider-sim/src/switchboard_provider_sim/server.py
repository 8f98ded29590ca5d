"""Run the simulator as its own HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from switchboard_provider_sim.app import create_app
from switchboard_shared.settings import Settings


class _EmbeddedServer(uvicorn.Server):
    # Signals belong to whoever runs the event loop; this server stops when cancelled.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    """Serve the simulator on `settings.host:settings.port` until cancelled, then shut
    down cleanly (open requests finish, pending callbacks are dropped)."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the process's logging set-up
        access_log=False,  # thousands of calls would drown the log
        lifespan="on",
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
