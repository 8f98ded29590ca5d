"""After the measured phase, what the services say: their Prometheus counters and mean
handler times, the simulator's log of numbers dialed, and the stored status of calls."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx

from switchboard_testing.processes import ServiceProcess

COUNTERS = (
    "switchboard_calls_created_total",
    "switchboard_calls_ended_total",
    "switchboard_provider_errors_total",
    "switchboard_publish_failures_total",
    "switchboard_messages_retried_total",
    "switchboard_messages_dead_lettered_total",
    "switchboard_outbox_republished_total",
    "switchboard_watchdog_calls_total",
    "switchboard_webhook_attempts_total",
    "switchboard_callbacks_received_total",
)


async def scrape_counters(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    """The non-zero COUNTERS, summed over the services, by name and labels."""
    totals: dict[str, float] = {}
    pattern = re.compile(r"^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$")
    async with httpx.AsyncClient(timeout=5) as client:
        for process in processes.values():
            try:
                text = (await client.get(f"{process.url}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                match = pattern.match(line)
                if not match or match.group(1) not in COUNTERS:
                    continue
                key = match.group(1).removeprefix("switchboard_") + (match.group(2) or "")
                totals[key] = totals.get(key, 0.0) + float(match.group(3))
    return {k: v for k, v in sorted(totals.items()) if v}


async def handler_means(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    """Mean consumer handler time per queue, from the services' histograms."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    pattern = re.compile(r"^switchboard_handler_seconds_(sum|count)\{(.*)\} ([0-9.eE+-]+)$")
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("dialer", "notifier"):
            try:
                text = (await client.get(f"{processes[name].url}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                match = pattern.match(line)
                if not match:
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
                key = f"{labels.get('queue', '?')} ({labels.get('outcome', '?')})"
                target = sums if match.group(1) == "sum" else counts
                target[key] = target.get(key, 0.0) + float(match.group(3))
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


async def dial_counts(simulator_url: str) -> Counter[str]:
    """How many times the simulator was asked to dial each number."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=30) as sim:
        calls = (await sim.get("/_sim/calls")).json()["data"]
    return Counter(call["to_number"] for call in calls)


async def statuses_of(client: httpx.AsyncClient, call_ids: list[str]) -> Counter[str]:
    """The stored status of each call, read through the API."""
    statuses: Counter[str] = Counter()
    limit = asyncio.Semaphore(10)

    async def one(call_id: str) -> None:
        async with limit:
            try:
                got = await client.get(f"/v1/calls/{call_id}")
                statuses[got.json().get("status", f"HTTP {got.status_code}")] += 1
            except (httpx.HTTPError, ValueError) as exc:
                statuses[type(exc).__name__] += 1

    await asyncio.gather(*(one(c) for c in call_ids))
    return statuses
