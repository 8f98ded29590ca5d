"""`/healthz`, `/readyz` and `/metrics`: the same three routes on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from switchboard_shared.ports import Bus, Store

ReadinessCheck = Callable[[], Awaitable[None]]
# What `/readyz` also shows without deciding readiness (the providers' breakers).
ReadinessDetail = Callable[[], Awaitable[Mapping[str, str]]]
# A dependency slower than this is as good as down for a probe.
PING_TIMEOUT_SECONDS = 2.0


class Readiness:
    """Named dependency checks plus a draining flag: on SIGTERM the process reports
    not-ready first, so the load balancer stops sending before anything closes."""

    def __init__(self, checks: Mapping[str, ReadinessCheck] | None = None) -> None:
        self.checks: dict[str, ReadinessCheck] = dict(checks or {})
        self.details: dict[str, ReadinessDetail] = {}
        self.draining = False

    @classmethod
    def of(cls, store: Store, bus: Bus) -> Readiness:
        """Ready when the store and the broker answer their pings."""
        return cls({"store": store.ping, "broker": bus.ping})

    async def report(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                await asyncio.wait_for(check(), PING_TIMEOUT_SECONDS)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", with its reason
                results[name] = f"unavailable: {type(exc).__name__}"
        if self.draining:
            results["process"] = "draining"
        ready = not self.draining and all(v == "ok" for v in results.values())
        return ready, results

    async def detail_report(self) -> dict[str, dict[str, str]] | None:
        """Each detail's current view; a detail that cannot be read says so, and still
        never makes the process unready."""
        if not self.details:
            return None
        shown: dict[str, dict[str, str]] = {}
        for name, detail in self.details.items():
            try:
                shown[name] = dict(await asyncio.wait_for(detail(), PING_TIMEOUT_SECONDS))
            except Exception as exc:  # informational only
                shown[name] = {"error": type(exc).__name__}
        return shown


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "checks": {"store": "ok", "broker": "ok"}}]
        }
    )

    status: str
    checks: dict[str, str] | None = None
    details: dict[str, dict[str, str]] | None = None


def ops_router() -> APIRouter:
    """The three routes; `/readyz` reports `app.state.readiness` of the app serving it."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health, summary="Liveness", operation_id="getHealth")
    async def healthz() -> Health:
        """Always 200 while the process serves requests."""
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Health,
        response_model_exclude_none=True,
        summary="Readiness",
        operation_id="getReadiness",
        responses={503: {"description": "Not ready: `checks` names what failed"}},
    )
    async def readyz(request: Request) -> Health | JSONResponse:
        """200 when every check passes; 503 with each check's state otherwise."""
        readiness: Readiness = request.app.state.readiness
        ready, checks = await readiness.report()
        details = await readiness.detail_report()
        if ready:
            return Health(status="ready", checks=checks, details=details)
        failed = ", ".join(name for name, state in checks.items() if state != "ok")
        return JSONResponse(
            {
                "status": "not_ready",
                "checks": checks,
                "details": details,
                # The error shape too, for clients that read every non-2xx the same way.
                "error": {"code": "not_ready", "message": f"not ready: {failed}"},
            },
            status_code=503,
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
