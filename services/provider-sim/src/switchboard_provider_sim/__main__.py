"""`python -m switchboard_provider_sim`: the simulator alone, configured from the
environment (SWITCHBOARD_HOST, SWITCHBOARD_PORT, SWITCHBOARD_SIM_*, provider keys)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from switchboard_provider_sim.server import serve
from switchboard_shared.settings import Settings


async def _main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper())
    task = asyncio.create_task(serve(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(_main())
