"""Signed callback delivery: one shared client, a few retries, never raising."""

from __future__ import annotations

import asyncio
import logging

import httpx

from switchboard_shared.calls.callback_signing import CallbackSigner

log = logging.getLogger(__name__)

# The receiver may be starting or may not know the call yet (the dialer has not saved
# the provider call id): retry any failure for about 15 seconds.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


class CallbackSender:
    """POSTs callbacks; the HTTP client is made on first use, in the serving loop."""

    def __init__(self, timeout_seconds: float = 10.0, max_connections: int = 200) -> None:
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                # Hundreds of calls call back at once: wait for a pooled connection
                # rather than failing; each request still has its own timeout.
                timeout=httpx.Timeout(self._timeout, pool=None),
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
            )
        return self._client

    async def deliver(self, url: str, body: bytes, scheme: CallbackSigner, secret: str) -> bool:
        """POST `body` to `url`, signed afresh on every attempt; True once a 2xx came back."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
            headers = {"Content-Type": "application/json", **scheme.sign(secret, body)}
            try:
                response = await self._http().post(url, content=body, headers=headers)
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
        if self._client is not None:
            await self._client.aclose()
            self._client = None
