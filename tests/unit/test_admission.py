"""AdmissionLimit: past its limit of requests in flight, an immediate 503 with Retry-After."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from starlette.types import Receive, Scope, Send

from switchboard_shared.http.admission import AdmissionLimit


class HeldApp:
    """Answers 200 once `release` is set; counts the requests that reached it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.reached = 0
        self._arrival = asyncio.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._arrival:
            self.reached += 1
            self._arrival.notify_all()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_reached(self, count: int) -> None:
        async with self._arrival:
            await self._arrival.wait_for(lambda: self.reached >= count)


async def test_requests_past_the_limit_are_answered_at_once_and_never_reach_the_app() -> None:
    inner = HeldApp()
    app = AdmissionLimit(inner, max_in_flight=2, retry_after_seconds=3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        held = [asyncio.create_task(client.post("/v1/calls")) for _ in range(2)]
        await asyncio.wait_for(inner.wait_reached(2), timeout=5)
        refused = await client.post("/v1/calls")
        probe = asyncio.create_task(client.get("/readyz"))
        await asyncio.wait_for(inner.wait_reached(3), timeout=5)
        inner.release.set()
        answered = await asyncio.gather(*held, probe)
        after = await client.post("/v1/calls")

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "3"
    assert refused.json()["error"]["code"] == "overloaded"
    assert inner.reached == 4  # two held, the probe, the request after: not the refused one
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert after.status_code == 200
    assert app.in_flight == 0


async def test_a_failing_request_gives_its_slot_back() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = AdmissionLimit(failing, max_in_flight=1, retry_after_seconds=1)
    scope: Scope = {"type": "http", "path": "/v1/calls", "method": "POST", "headers": []}
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            await app(scope, _no_body, _discard)
    assert app.in_flight == 0


async def _no_body() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: object) -> None:
    return None
