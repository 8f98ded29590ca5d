"""Serve an ASGI app with a real uvicorn server on a loopback port, in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from switchboard_testing.net import free_port


class _QuietServer(uvicorn.Server):
    # The caller owns SIGINT/SIGTERM (pytest, the benchmark): uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 in the running event loop; yields its base URL.

    The app's lifespan runs, so startup/shutdown hooks behave as in production.
    """
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Longer than any client's idle expiry (httpx: 5 s), as our services run: with
        # uvicorn's default of 5 s, a pooled connection reused just as the server closes
        # it fails with ReadError (a CI flake in the simulator suite).
        timeout_keep_alive=75,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("uvicorn stopped before starting")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
