"""The public API application: routes, error shape and body limit, given its adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from switchboard_api.rate_limit import TenantRateLimiter
from switchboard_api.routes import agents, calls, usage
from switchboard_shared.http_errors import error_response, install_error_handlers
from switchboard_shared.ops_http import Readiness, ops_router
from switchboard_shared.ports import Bus, InvalidCursor, Store
from switchboard_shared.settings import Settings

DESCRIPTION = """\
Create outbound AI voice calls with a phone number and an internal agent key, then read
their status, transcript and duration. Every `/v1` route needs
`Authorization: Bearer <API key>`. Errors are always
`{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(
    *,
    settings: Settings,
    store: Store,
    bus: Bus,
    start_store: bool = False,
    readiness: Readiness | None = None,
) -> FastAPI:
    """The API app over already-built adapters (the composition root builds them).

    The bus is always started and closed by the caller. With `start_store`, the app's
    lifespan also starts the store and closes it on shutdown. `/readyz` reports
    `app.state.readiness`: `readiness` if given (the process's, so draining shows), else
    store and broker pings.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_store:
            await store.start()
        try:
            yield
        finally:
            if start_store:
                await store.close()

    app = FastAPI(
        title="Switchboard API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.bus = bus
    app.state.readiness = readiness or Readiness.of(store, bus)
    app.state.rate_limiter = (
        TenantRateLimiter(settings.api_rate_limit_per_second, settings.api_rate_limit_burst)
        if settings.api_rate_limit_per_second > 0
        else None
    )
    install_error_handlers(app, max_body_bytes=settings.max_body_bytes)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.include_router(ops_router())
    for module in (calls, agents, usage):
        app.include_router(module.router)
    return app


async def _invalid_cursor(_: Request, exc: Exception) -> JSONResponse:
    return error_response(
        400, "invalid_cursor", "cursor is not one this list returned for these filters"
    )
