"""A customer's webhook receiver on loopback that records what it gets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """Answers 200 after `delay` seconds; `in_flight` counts requests being answered.

    While `failing` is set it answers 500 instead (a receiver outage): those requests are
    counted in `refused` and not recorded in `received`."""

    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    failing: bool = False
    refused: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.in_flight += 1
            try:
                body = await request.body()
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.failing:
                    self.refused += 1
                    return Response(status_code=500)
                self.received.append(Received(dict(request.headers), body))
                return Response(status_code=200)
            finally:
                self.in_flight -= 1

        return app

    def by_webhook_id(self) -> dict[str, list[Received]]:
        grouped: dict[str, list[Received]] = {}
        for item in self.received:
            grouped.setdefault(item.headers["webhook-id"], []).append(item)
        return grouped

    def completed_call_ids(self) -> set[str]:
        return {
            r.payload["data"]["call_id"]
            for r in self.received
            if r.payload["type"] == "call.completed"
        }
