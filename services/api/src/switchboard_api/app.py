"""The public API application: routes, error shape and body limit, given its adapters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema

from switchboard_api.rate_limit import TenantRateLimiter
from switchboard_api.routes import (
    agents,
    batches,
    blocked_numbers,
    call_events,
    calls,
    config,
    deliveries,
    recordings,
    sessions,
    usage,
    webhooks,
)
from switchboard_shared.calls.outbox import DeferredPublisher
from switchboard_shared.http.error_handling import install_error_handlers
from switchboard_shared.http.errors import error_response
from switchboard_shared.http.ops import Readiness, ops_router
from switchboard_shared.ports import Bus, InvalidCursor, Provider, Store
from switchboard_shared.runtime.settings import Settings

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
    readiness: Readiness | None = None,
    providers: Mapping[str, Provider] | None = None,
) -> FastAPI:
    """The whole API app, every router included, over already-built adapters (the
    composition root builds them, and starts and closes them: the app never does).

    Routes reach the adapters through `app.state` and the `Depends` aliases of `deps.py`.
    `/readyz` reports `app.state.readiness`: `readiness` if given (the process's, so
    draining shows), else store and broker pings. `providers` are the adapters recordings are
    fetched through (a call whose provider is missing answers 503).
    """
    # /docs loads its JS and CSS from the installed package (under /static-offline-docs),
    # never from a CDN: self-hosted installs often have no internet. No ReDoc: it fetches
    # its logo from a CDN, and Swagger UI does everything it does plus "try it out".
    app = FastAPIOffline(
        redoc_url=None,
        title="Switchboard API",
        version="1.0.0",
        description=DESCRIPTION,
        # Swagger UI would otherwise send the schema to a public validator.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.bus = bus
    # New calls' events are published after the 201 (the outbox keeps them till then).
    app.state.publisher = DeferredPublisher(store, bus)
    app.state.providers = dict(providers or {})
    app.state.readiness = readiness or Readiness.of(store, bus)
    app.state.rate_limiter = (
        TenantRateLimiter(settings.api_rate_limit_per_second, settings.api_rate_limit_burst)
        if settings.api_rate_limit_per_second > 0
        else None
    )
    install_error_handlers(
        app,
        max_body_bytes=settings.max_body_bytes,
        larger_body_limits={"/v1/batches": settings.max_batch_body_bytes},
    )
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.include_router(ops_router())
    for module in (
        calls,
        recordings,
        call_events,
        agents,
        usage,
        webhooks,
        deliveries,
        config,
        sessions,
        blocked_numbers,
        batches,
    ):
        app.include_router(module.router)
    _document_bodies_read_by_hand(app)
    return app


def _document_bodies_read_by_hand(app: FastAPI) -> None:
    """Put the models of bodies a route parses itself (a batch: JSON or CSV) among the
    schema's components, where their routes' `openapi_extra` refers to them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        _, top = models_json_schema(
            [(model, "validation") for model in batches.BODY_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in top.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name in camelCase (`create_call` ->
    `createCall`): stable, and what client generators name their methods after."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


async def _invalid_cursor(_: Request, exc: Exception) -> JSONResponse:
    return error_response(
        400, "invalid_cursor", "cursor is not one this list returned for these filters"
    )
