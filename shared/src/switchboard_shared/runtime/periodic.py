"""A background loop that runs one round of work every `interval` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    """Calls `round_` every `interval` seconds until stopped; a failing round is logged
    and the loop goes on, so a store or broker outage only delays the work."""

    def __init__(self, name: str, round_: Callable[[], Awaitable[object]], interval: float) -> None:
        self.name = name
        self._round = round_
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:
                log.exception("%s round failed", self.name)
            await asyncio.sleep(self._interval)
