"""The customer's webhook receiver: a bare ASGI app (no framework, so it costs the
benchmark process little) recording when each call's `call.completed` first arrived."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Receiver:
    """Answers 204 to every POST; `completed` maps call_id to the arrival time
    (time.monotonic) of its first `call.completed`."""

    completed: dict[str, float] = field(default_factory=dict)
    end_status: dict[str, str] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    deliveries: int = 0
    signed: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.record(body, dict(scope["headers"]), time.monotonic())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def record(self, body: bytes, headers: dict[bytes, bytes], now: float) -> None:
        self.deliveries += 1
        if b"webhook-signature" in headers and b"webhook-id" in headers:
            self.signed += 1
        try:
            event = json.loads(body)
            kind, data = str(event["type"]), event["data"]
        except (ValueError, KeyError, TypeError):
            self.types["<unparsable>"] += 1
            return
        self.types[kind] += 1
        if kind != "call.completed":
            return
        call_id = str(data.get("call_id"))
        if call_id in self.completed:
            self.duplicates += 1
            return
        self.completed[call_id] = now
        self.end_status[call_id] = str(data.get("status"))
