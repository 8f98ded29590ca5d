"""`/healthz` (the process answers) and `/readyz` (store and broker reachable).

`/readyz` reports `app.state.readiness` (the shared `Readiness`), read per request, so a
composition root that swaps in the process's readiness also gets its draining flag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from switchboard_api.schemas import Health
from switchboard_shared.ops_http import Readiness
from switchboard_shared.ports import Bus, Store

router = APIRouter(tags=["operations"])

# A dependency slower than this is as good as down for a readiness probe.
PING_TIMEOUT_SECONDS = 2.0


def _bounded(ping: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        await asyncio.wait_for(ping(), PING_TIMEOUT_SECONDS)

    return check


def api_readiness(store: Store, bus: Bus) -> Readiness:
    """Readiness of the API: the store and the broker must answer `ping` in time."""
    return Readiness({"store": _bounded(store.ping), "broker": _bounded(bus.ping)})


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Always 200 while the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses={503: {"description": "Not ready: `checks` names what failed"}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    """200 when every check passes; 503 with each check's state otherwise."""
    readiness: Readiness = request.app.state.readiness
    ready, checks = await readiness.report()
    if ready:
        return Health(status="ready", checks=checks)
    failed = ", ".join(name for name, state in checks.items() if state != "ok")
    return JSONResponse(
        {
            "status": "not_ready",
            "checks": checks,
            # The error shape too, for clients that read every non-2xx the same way.
            "error": {"code": "not_ready", "message": f"not ready: {failed}"},
        },
        status_code=503,
    )
