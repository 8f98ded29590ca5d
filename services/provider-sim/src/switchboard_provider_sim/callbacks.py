"""Signed callback delivery: a few shared clients, a few retries, never raising."""

from __future__ import annotations

import asyncio
import logging

import httpx

from switchboard_shared.calls.callback_signing import CallbackSigner
from switchboard_shared.http.client_shards import ClientShards

log = logging.getLogger(__name__)

# The receiver may be starting or may not know the call yet (the dialer has not saved
# the provider call id): retry any failure for about 15 seconds.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


# Callbacks POSTed at once; the rest wait their turn here, where waiting costs nothing:
# hundreds of callbacks queued in one httpx pool of hundreds of connections made its
# bookkeeping most of the simulator's CPU (py-spy, bench/RESULTS.md).
MAX_IN_FLIGHT = 32


class CallbackSender:
    """POSTs callbacks; the HTTP clients are made on first use, in the serving loop."""

    def __init__(self, timeout_seconds: float = 10.0, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._timeout = timeout_seconds
        self._max_in_flight = max_in_flight
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._clients: ClientShards | None = None

    def _shards(self) -> ClientShards:
        if self._clients is None:
            self._clients = ClientShards(self._max_in_flight, timeout=httpx.Timeout(self._timeout))
        return self._clients

    async def deliver(self, url: str, body: bytes, scheme: CallbackSigner, secret: str) -> bool:
        """POST `body` to `url`, signed afresh on every attempt; True once a 2xx came back."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
            try:
                async with self._in_flight:
                    # Signed when sent: its timestamp must not age in the queue.
                    headers = {"Content-Type": "application/json", **scheme.sign(secret, body)}
                    with self._shards().client() as client:
                        response = await client.post(url, content=body, headers=headers)
                if response.is_success:
                    return True
                outcome = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                outcome = repr(exc)
            if delay is None:
                log.warning("callback to %s gave up after %d attempts: %s", url, attempt, outcome)
                return False
            log.debug("callback to %s failed (%s); retrying in %ss", url, outcome, delay)
            await asyncio.sleep(delay)
        return False

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.aclose()
            self._clients = None
