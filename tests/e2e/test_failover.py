"""Failover in the production shape (five processes, RabbitMQ, MongoDB): an agent whose
first route's provider is down completes every call through its second route, none
dialed twice; the down provider's breaker opens, and closes once it is back."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from tests.e2e.conftest import Pipeline
from tests.e2e.test_pipeline import create_call, unique_numbers, wait_terminal
from tests.support.net import eventually

pytestmark = pytest.mark.e2e

VOCODE_PORT = free_port()  # nothing listens here until the test brings "Vocode" back
PIPELINE_ENV = {
    "SWITCHBOARD_VOCODE__BASE_URL": f"http://127.0.0.1:{VOCODE_PORT}",
    "SWITCHBOARD_BREAKER_FAILURE_THRESHOLD": "3",
    "SWITCHBOARD_BREAKER_COOL_DOWN_SECONDS": "1",
}


async def dials(url: str) -> Counter[str]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/_sim/calls")
    response.raise_for_status()
    return Counter(c["to_number"] for c in response.json()["data"])


def breaker_state(pipeline: Pipeline, provider: str) -> str | None:
    for line in pipeline.cli("providers", "status").splitlines()[1:]:
        name, state, *_ = line.split()
        if name == provider:
            return state
    return None


async def dialer_details(pipeline: Pipeline) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=5) as client:
        ready = (await client.get(f"{pipeline.processes['dialer'].url}/readyz")).json()
    assert ready["status"] == "ready"  # an open breaker never fails readiness
    details: dict[str, str] = ready.get("details", {}).get("provider_breakers", {})
    return details


async def test_a_down_first_route_fails_over_and_its_breaker_opens_then_closes(
    pipeline: Pipeline,
) -> None:
    sim = pipeline.processes["provider-sim"].url
    phones = unique_numbers(12, block=71)
    async with pipeline.client() as client:
        ids = await asyncio.gather(*(create_call(client, p, agent="failover") for p in phones))
        calls = await wait_terminal(client, list(ids), within=60)
    assert {c["status"] for c in calls.values()} == {"completed"}, calls
    counted = await dials(sim)
    assert all(counted[p] == 1 for p in phones), {p: counted[p] for p in phones}

    # A failed-over call's timeline shows the failed attempt, never the provider.
    async with pipeline.client() as client:
        first = (await client.get(f"/v1/calls/{ids[0]}/events")).json()["data"]
    outcomes = [e["outcome"] for e in first if e["type"] == "dial_attempt"]
    assert outcomes[-1] == "accepted"
    assert set(outcomes[:-1]) <= {"provider_unavailable"}
    assert "vocode" not in str(first)
    assert "simulator" not in str(first)

    assert breaker_state(pipeline, "vocode") == "open"
    assert (await dialer_details(pipeline)).get("vocode") == "open"

    # "Vocode" comes back (a simulator, speaking Vocode's API, on its port).
    logs = pipeline.processes["provider-sim"].log_path.with_name("vocode-sim.log")
    vocode = ServiceProcess("provider-sim", VOCODE_PORT, pipeline.env, logs)
    await asyncio.to_thread(vocode.start)
    try:
        later = iter(unique_numbers(30, block=72))
        tried: list[str] = []

        async def closed() -> bool:
            phone = next(later)
            tried.append(phone)
            async with pipeline.client() as client:
                call_id = await create_call(client, phone, agent="failover")
                done = await wait_terminal(client, [call_id], within=30)
            assert done[call_id]["status"] == "completed", done
            return breaker_state(pipeline, "vocode") == "closed"

        assert await eventually(closed, within=30)
        on_sim, on_vocode = await dials(sim), await dials(vocode.url)
        # The call that closed the breaker was the probe, placed through Vocode; every
        # call was placed exactly once, at one provider or the other.
        assert on_vocode[tried[-1]] == 1
        assert all(on_sim[p] + on_vocode[p] == 1 for p in tried), (on_sim, on_vocode)
    finally:
        await asyncio.to_thread(vocode.stop)
