"""One attempt at delivering a customer webhook, and what it means for the schedule.

`WebhookSender.send` checks the URL with the SSRF guard, POSTs the body to the address
the guard checked (the original host goes in `Host` and in TLS SNI, so the certificate
is still verified against it), never follows a redirect, and classifies the answer:

- delivered: any 2xx;
- retry: timeout, connection or DNS error, 408, 429, 5xx (with `Retry-After`, seconds or
  an HTTP date, when the receiver sent one);
- failed: any other status (3xx included), or a URL the guard refuses.

Every attempt comes back as a `DeliveryAttempt` for the delivery log: status code,
latency, error text and the first KiB of the response body. Nothing sleeps here: waiting
between attempts is the bus's job.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import DeliveryAttempt
from switchboard_shared.http.client_shards import ClientShards
from switchboard_shared.observability.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_SECONDS
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.webhooks.url_guard import (
    CheckedTarget,
    UnresolvableHost,
    UnsafeUrl,
    check_url,
)

USER_AGENT = "Switchboard-Webhooks/1"
# How much of a response body the delivery log keeps.
RESPONSE_BODY_LIMIT = 1024
_RETRY_STATUSES = frozenset({408, 429})


class AttemptResult(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt did (`attempt`, for the log) and what it means (`result`)."""

    result: AttemptResult
    attempt: DeliveryAttempt
    retry_after: float | None = None  # seconds the receiver asked us to wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date);
    None when absent or unreadable, 0 for a date in the past."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def classify(status_code: int) -> AttemptResult:
    """What an HTTP status means for the delivery."""
    if 200 <= status_code < 300:
        return AttemptResult.DELIVERED
    if status_code in _RETRY_STATUSES or status_code >= 500:
        return AttemptResult.RETRY
    return AttemptResult.FAILED


# Kept-alive connections are per (scheme, host name, checked address, port): clients of
# their own, so a connection verified for one host name never carries another host's
# webhook that resolves to the same IP, and every request still goes to the address the
# guard checked. Past this many hosts the least recently used one's clients are closed.
MAX_HOSTS_KEPT_ALIVE = 64
# Kept alive per host, spread over small clients (http/client_shards.py).
CONNECTIONS_PER_HOST = 32
# Below the 5 s idle timeout of common servers (uvicorn, Node): a connection the
# receiver is about to close is not reused.
KEEPALIVE_EXPIRY_SECONDS = 4.0

_HostKey = tuple[str, str, str, int]


class WebhookSender:
    """POSTs signed webhooks; one instance per process (it holds HTTP clients)."""

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context` replaces the system trust store (tests with their own CA)."""
        self._timeout = settings.webhook_timeout_seconds
        self._allow_http = settings.webhook_allow_http
        self._allow_private = settings.webhook_allow_private_networks
        # One TLS context for every host's clients (each would load the CA bundle again).
        self._tls = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._hosts: OrderedDict[_HostKey, ClientShards] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        hosts = list(self._hosts.values())
        self._hosts.clear()
        for task in self._closing:
            task.cancel()  # closes its clients now
        await asyncio.gather(
            *(clients.aclose() for clients in hosts), *self._closing, return_exceptions=True
        )

    def _clients_for(self, target: CheckedTarget) -> ClientShards:
        key = (target.scheme, target.host, target.address, target.port)
        if (clients := self._hosts.get(key)) is not None:
            self._hosts.move_to_end(key)
            return clients
        clients = ClientShards(
            CONNECTIONS_PER_HOST,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            tls=self._tls,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            # Proxies from the environment would resolve the name themselves.
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._hosts[key] = clients
        if len(self._hosts) > MAX_HOSTS_KEPT_ALIVE:
            _, evicted = self._hosts.popitem(last=False)
            task = asyncio.get_running_loop().create_task(self._close_later(evicted))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return clients

    async def _close_later(self, clients: ClientShards) -> None:
        # A request on them may be in flight: every one ends within the webhook timeout.
        try:
            await asyncio.sleep(self._timeout + 1)
        finally:
            await clients.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> AttemptOutcome:
        """One POST of `body` to `url` with `headers`, bounded by the webhook timeout."""
        sent_at = utcnow()
        started = time.monotonic()
        outcome = await self._attempt(url, body, headers, started)
        WEBHOOK_ATTEMPTS.labels(outcome.result).inc()
        # The whole attempt (URL check, connect, response), so timeouts count too.
        WEBHOOK_SECONDS.labels(outcome.result).observe(time.monotonic() - started)
        # The log shows when the attempt began, not when it ended.
        outcome.attempt.at = sent_at
        return outcome

    async def _attempt(
        self, url: str, body: bytes, headers: Mapping[str, str], started: float
    ) -> AttemptOutcome:
        def outcome(result: AttemptResult, error: str) -> AttemptOutcome:
            return AttemptOutcome(result, DeliveryAttempt(latency_ms=_ms(started), error=error))

        try:
            async with asyncio.timeout(self._timeout):
                target = await check_url(
                    url, allow_http=self._allow_http, allow_private=self._allow_private
                )
                return await self._post(target, body, headers, started)
        except UnresolvableHost as exc:
            return outcome(AttemptResult.RETRY, str(exc))
        except UnsafeUrl as exc:
            return outcome(AttemptResult.FAILED, f"refused by the URL guard: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return outcome(AttemptResult.RETRY, f"no response within {self._timeout:g} s")
        except httpx.TransportError as exc:
            return outcome(AttemptResult.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _post(
        self, target: CheckedTarget, body: bytes, headers: Mapping[str, str], started: float
    ) -> AttemptOutcome:
        request_url = httpx.URL(target.url).copy_with(host=target.address, fragment=None)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        with self._clients_for(target).client() as client:
            async with client.stream(
                "POST",
                request_url,
                content=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "Host": target.host_header,
                },
                extensions=extensions,
            ) as response:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept += chunk
                    if len(kept) >= RESPONSE_BODY_LIMIT:
                        break
        result = classify(response.status_code)
        error = None
        if 300 <= response.status_code < 400:
            error = f"redirect to {response.headers.get('location', '?')} not followed"
        elif result is not AttemptResult.DELIVERED:
            error = f"HTTP {response.status_code}"
        retry_after = None
        if result is AttemptResult.RETRY:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        attempt = DeliveryAttempt(
            status_code=response.status_code,
            latency_ms=_ms(started),
            error=error,
            response_body=bytes(kept[:RESPONSE_BODY_LIMIT]).decode("utf-8", errors="replace")
            or None,
        )
        return AttemptOutcome(result, attempt, retry_after)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
