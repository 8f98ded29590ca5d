"""`/healthz`, `/readyz` and `/metrics`: the same three routes on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[None]]
PING_TIMEOUT_SECONDS = 2.0


class Readiness:
    """Named dependency checks plus a draining flag: on SIGTERM the process reports
    not-ready first, so the load balancer stops sending before anything closes."""

    def __init__(self, checks: Mapping[str, ReadinessCheck] | None = None) -> None:
        self.checks: dict[str, ReadinessCheck] = dict(checks or {})
        self.draining = False

    async def report(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                # A dependency slower than this is as good as down for a probe.
                await asyncio.wait_for(check(), PING_TIMEOUT_SECONDS)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", with its reason
                results[name] = f"unavailable: {type(exc).__name__}"
        if self.draining:
            results["process"] = "draining"
        ready = not self.draining and all(v == "ok" for v in results.values())
        return ready, results


def ops_router(readiness: Readiness) -> APIRouter:
    router = APIRouter(tags=["operations"], include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, results = await readiness.report()
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
