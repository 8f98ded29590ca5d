"""`/demo` of the all-in-one (development only): a page where a person starts a browser
voice session, speaks, hears the agent, sees the timer and the transcript, and ends it.

The page never sees an API key: its backend calls (`POST /demo/sessions`,
`DELETE /demo/sessions/{id}`) go to the public API from the server, with the demo key.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

PAGE = files("switchboard").joinpath("demo_page.html").read_text(encoding="utf-8")


class DemoBackend:
    """Calls the public API on this process with the demo key, once it is known."""

    def __init__(self, api_url: str) -> None:
        self._api_url = api_url
        self.api_key: str | None = None

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> JSONResponse:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self._api_url, headers=headers, timeout=10) as api:
            response = await api.request(method, path, json=body)
        return JSONResponse(response.json(), status_code=response.status_code)


def demo_router() -> APIRouter:
    router = APIRouter(prefix="/demo", include_in_schema=False)

    def backend(request: Request) -> DemoBackend:
        demo: DemoBackend = request.app.state.demo
        return demo

    @router.get("", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @router.post("/sessions")
    async def start(request: Request) -> JSONResponse:
        return await backend(request).call("POST", "/v1/sessions", {})

    @router.delete("/sessions/{session_id}")
    async def end(request: Request, session_id: str) -> JSONResponse:
        return await backend(request).call("DELETE", f"/v1/sessions/{session_id}")

    return router
