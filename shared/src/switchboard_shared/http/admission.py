"""How much HTTP work a process takes at once: beyond that, a fast `503 overloaded`.

A saturated server that keeps accepting requests answers all of them late and, past the
client's timeout, none of them usefully; one that stops reading lets connections reset.
Instead each process admits up to `max_in_flight` requests and answers the rest at once
with `503 overloaded` and `Retry-After`, before any of their work is done, so a client
always gets an answer it can act on and nothing is half-created. `/healthz`, `/readyz`
and `/metrics` are always admitted: probes must see an overloaded process as alive.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from switchboard_shared.http.errors import error_response

ALWAYS_ADMITTED = frozenset({"/healthz", "/readyz", "/metrics"})


class AdmissionLimit:
    """ASGI middleware bounding the HTTP requests in flight in this process."""

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_seconds = retry_after_seconds
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in ALWAYS_ADMITTED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = error_response(
                503,
                "overloaded",
                "the server is at capacity; retry after the Retry-After seconds",
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
