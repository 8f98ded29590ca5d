"""SIGTERM while a dialer and a notifier hold in-flight messages: each finishes what it
holds and exits 0; nothing is lost and nothing is done twice."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from switchboard_testing.servers import serving
from tests.e2e.conftest import Pipeline
from tests.e2e.test_pipeline import create_call, sim_dials, unique_numbers, wait_terminal
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

# A slow provider keeps the dialer's create-call requests in flight long enough to SIGTERM.
PIPELINE_ENV = {"SWITCHBOARD_SIM_REQUEST_LATENCY_SECONDS": "1.5"}


async def dialer_in_flight(pipeline: Pipeline) -> float:
    async with httpx.AsyncClient(base_url=pipeline.processes["dialer"].url) as client:
        text = (await client.get("/metrics")).text
    values = re.findall(r"^switchboard_dialer_in_flight\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in values)


async def test_sigterm_drains_a_dialer_holding_provider_requests(pipeline: Pipeline) -> None:
    dialer = pipeline.processes["dialer"]
    phones = unique_numbers(8, 5)
    async with pipeline.client() as client:
        call_ids = list(await asyncio.gather(*(create_call(client, p) for p in phones)))
        await eventually(lambda: dialer_in_flight(pipeline), within=20)
        exit_code = await asyncio.to_thread(dialer.terminate, 30)
        assert exit_code == 0, dialer.logs()
        await asyncio.to_thread(dialer.start)
        calls = await wait_terminal(client, call_ids, within=60)
    assert {c["status"] for c in calls.values()} == {"completed"}
    dials = await sim_dials(pipeline)
    assert all(dials[p] == 1 for p in phones), {p: dials[p] for p in phones}


async def test_sigterm_drains_a_notifier_holding_deliveries(pipeline: Pipeline) -> None:
    notifier = pipeline.processes["notifier"]
    receiver = WebhookReceiver(delay=1.5)
    async with serving(receiver.app()) as receiver_url, pipeline.client() as client:
        registered = await client.put("/v1/webhooks", json={"url": f"{receiver_url}/hook"})
        assert registered.status_code in (200, 201), registered.text
        call_ids = {await create_call(client, p) for p in unique_numbers(6, 6)}

        async def delivering() -> bool:
            return receiver.in_flight > 0

        await eventually(delivering, within=30)
        exit_code = await asyncio.to_thread(notifier.terminate, 30)
        assert exit_code == 0, notifier.logs()
        await asyncio.to_thread(notifier.start)

        async def all_delivered() -> bool:
            return receiver.completed_call_ids() >= call_ids

        await eventually(all_delivered, within=60)
        await asyncio.sleep(1)  # room for a duplicate to show up, if there were one
    per_id = receiver.by_webhook_id()
    assert all(len(items) == 1 for items in per_id.values()), {k: len(v) for k, v in per_id.items()}
