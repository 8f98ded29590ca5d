"""The simulator's FastAPI app: five API dialects on one server, Bearer-key protected.

It works standalone (`serve`) and mounted under a prefix in another app (the all-in-one
mounts it at `/sim`). A mounted app's lifespan does not run, so nothing here needs
start-up; the host app should `await app.state.simulator.close()` at shutdown.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from switchboard_provider_sim.calls import iso
from switchboard_provider_sim.dialects import convai, native, retell, vapi, vocode, voxpria
from switchboard_provider_sim.errors import SimError
from switchboard_provider_sim.lifecycle import Simulator
from switchboard_provider_sim.recordings import recording_response
from switchboard_shared.runtime.settings import Settings

# Vocode's routes come before the native ones: its `/v1/calls/recording` would be read
# as a native `/v1/calls/{call_id}` otherwise.
DIALECTS = (vocode, native, voxpria, vapi, retell)
ERROR_BODIES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    d.NAME: d.error_body for d in DIALECTS
}


# The route dependencies are `async def` though they never await: FastAPI runs a plain
# `def` one in its thread pool, a thread hop each per request (14 % of the simulator's
# CPU under the pipeline bench, py-spy).
def _dialect(name: str) -> Callable[[Request], Awaitable[None]]:
    # Runs first on each route, so errors raised later render in the right dialect.
    async def mark(request: Request) -> None:
        request.state.dialect = name

    return mark


def _key_check(settings: Settings) -> Callable[..., Awaitable[None]]:
    providers = (
        settings.simulator,
        settings.vocode,
        settings.voxpria,
        settings.vapi,
        settings.retell,
    )
    keys = [key for p in providers if (key := p.api_key.get_secret_value())]

    async def require_key(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SimError(401, "unauthorized", "missing Bearer API key")
        matches = [hmac.compare_digest(token.encode(), key.encode()) for key in keys]
        if not any(matches):
            raise SimError(401, "unauthorized", "invalid API key")

    return require_key


def _error_response(request: Request, status_code: int, code: str, message: str) -> JSONResponse:
    dialect = getattr(request.state, "dialect", native.NAME)
    return JSONResponse(ERROR_BODIES[dialect](code, message), status_code=status_code)


def create_app(settings: Settings) -> FastAPI:
    """A simulator with its own calls in memory; callbacks go where `settings` say."""
    callback_base = (settings.sim_callback_url or settings.callback_base_url).rstrip("/")
    simulator = Simulator(
        settings, {d.NAME: d.callback_format(settings, callback_base) for d in DIALECTS}
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await simulator.close()

    app = FastAPI(
        title="Switchboard provider simulator",
        description="A fake voice provider speaking the simulator, Vocode, Voxpria, Vapi "
        "and Retell APIs.",
        lifespan=lifespan,
    )
    app.state.simulator = simulator

    async def on_sim_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SimError)
        return _error_response(request, exc.status_code, exc.code, exc.message)

    async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return _error_response(request, 422, "invalid_request", problems)

    app.add_exception_handler(SimError, on_sim_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)

    require_key = _key_check(settings)

    async def provider_latency(request: Request) -> None:
        # A slow provider: creates and cancels answer only after the configured latency.
        if request.method == "POST" and settings.sim_request_latency_seconds > 0:
            await asyncio.sleep(settings.sim_request_latency_seconds)

    for dialect in DIALECTS:
        app.include_router(
            dialect.router,
            dependencies=[
                Depends(_dialect(dialect.NAME)),
                Depends(require_key),
                Depends(provider_latency),
            ],
        )

    # Browser-voice sessions: ElevenLabs' dialect, its own `xi-api-key` check.
    app.include_router(convai.router(settings, simulator, callback_base))

    @app.get("/recordings/{call_id}.wav", dependencies=[Depends(require_key)])
    async def recording(call_id: str, range: Annotated[str | None, Header()] = None) -> Response:
        """The audio the Voxpria, Vapi and Retell dialects link to (with any API key)."""
        return recording_response(simulator.get(call_id), range)

    @app.get("/_sim/calls", include_in_schema=False)
    async def calls_log() -> dict[str, list[dict[str, str | None]]]:
        """Every call the simulator placed (one entry per dial, oldest first; refused
        creates and idempotent replays add none): lets tests count dials per number or
        per reference."""
        return {
            "data": [
                {
                    "id": c.id,
                    "dialect": c.dialect,
                    "to_number": c.to_number,
                    "reference": c.reference or c.idempotency_key,
                    "status": c.status,
                    "created_at": iso(c.created_at),
                }
                for c in simulator.calls.all()
            ]
        }

    return app
