"""The load generator: POSTs to /v1/calls with so many in flight, timing each one, and
waiting for the calls' `call.completed` webhooks at the receiver."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.receiver import Receiver


def phones(count: int, offset: int = 0) -> list[str]:
    """Distinct valid Kyrgyz mobile numbers (none of them a simulator test number)."""
    return [f"+99670{offset + i:07d}" for i in range(count)]


@dataclass
class Posted:
    phone: str
    sent: float
    accepted: float


@dataclass
class Phase:
    """One batch of POSTs: the accepted calls by call_id, and the refusals by reason."""

    posted: dict[str, Posted] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    first_sent: float = 0.0
    last_accepted: float = 0.0


async def post_calls(
    client: httpx.AsyncClient, phones: list[str], agent: str, concurrency: int
) -> Phase:
    """One call per number, `concurrency` POSTs in flight."""
    phase = Phase(first_sent=time.monotonic())
    numbers = iter(phones)

    async def worker() -> None:
        for phone in numbers:
            sent = time.monotonic()
            try:
                response = await client.post("/v1/calls", json={"phone": phone, "agent": agent})
            except httpx.HTTPError as exc:
                phase.refused[type(exc).__name__] += 1
                continue
            if response.status_code == 201:
                accepted = time.monotonic()
                phase.posted[response.json()["call_id"]] = Posted(phone, sent, accepted)
                phase.last_accepted = max(phase.last_accepted, accepted)
            else:
                phase.refused[f"HTTP {response.status_code}"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return phase


async def wait_for_webhooks(receiver: Receiver, call_ids: list[str], within: float) -> None:
    """Until every call's `call.completed` arrived, or `within` seconds passed."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(call_id in receiver.completed for call_id in call_ids):
            return
        await asyncio.sleep(0.1)
