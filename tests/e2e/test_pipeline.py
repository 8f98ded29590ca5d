"""A created call is dialed once and ends in its expected terminal status — through every
provider adapter, every simulator test number, a broker outage and a killed dialer."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pipeline, dump
from tests.support.net import eventually

pytestmark = pytest.mark.e2e

TERMINAL = {"completed", "failed", "no_answer", "busy", "canceled"}

# number -> (status, ended_reason or None for "any")
TEST_NUMBERS: dict[str, tuple[str, str | None]] = {
    "+15005550001": ("busy", None),
    "+15005550002": ("no_answer", None),
    "+15005550003": ("failed", None),
    "+15005550004": ("completed", None),  # slow answer
    "+15005550005": ("failed", "all_providers_unavailable"),  # 500 on every create
    "+15005550006": ("failed", "provider_timeout"),  # never calls back
    "+15005550007": ("completed", None),  # two 500s, then accepted
    "+15005550008": ("failed", "provider_rejected"),  # 4xx on create
}
PROVIDER_WORDS = (
    "simulator",
    "vocode",
    "voxpria",
    "vapi",
    "retell",
    "provider_call_id",
    "sim-agent",
    "agent_abc123",
    "ended_reason_raw",
)
AGENTS = ("altynai", "akylai", "altai", "aibek", "aidai")  # one per provider adapter
# Providers that report an analysis of a completed conversation (Vocode, Voxpria: none).
ANALYZED = {"altynai", "aibek", "aidai"}


def unique_numbers(count: int, block: int) -> list[str]:
    """Distinct valid Kyrgyz mobile numbers, so the simulator's log counts dials per call."""
    return [f"+99670{block:02d}{i:05d}" for i in range(count)]


async def create_call(client: httpx.AsyncClient, phone: str, agent: str = "altynai") -> str:
    response = await client.post("/v1/calls", json={"phone": phone, "agent": agent})
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"call_id", "status"}
    return str(response.json()["call_id"])


async def wait_terminal(
    client: httpx.AsyncClient, call_ids: list[str], within: float
) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}

    async def all_terminal() -> bool:
        for call_id in call_ids:
            if call_id in calls and calls[call_id]["status"] in TERMINAL:
                continue
            response = await client.get(f"/v1/calls/{call_id}")
            assert response.status_code == 200, response.text
            calls[call_id] = response.json()
        return all(c["status"] in TERMINAL for c in calls.values())

    try:
        await eventually(all_terminal, within=within, interval=0.3)
    except AssertionError:
        pending = {k: v["status"] for k, v in calls.items() if v["status"] not in TERMINAL}
        raise AssertionError(f"calls not terminal after {within}s: {pending}") from None
    return calls


async def sim_dials(pipeline: Pipeline) -> Counter[str]:
    """How many times the simulator was asked to dial each number."""
    async with httpx.AsyncClient(base_url=pipeline.processes["provider-sim"].url) as sim:
        response = await sim.get("/_sim/calls")
        assert response.status_code == 200
        return Counter(call["to_number"] for call in response.json()["data"])


async def test_every_test_number_reaches_its_expected_terminal_status(pipeline: Pipeline) -> None:
    async with pipeline.client() as client:
        created = {await create_call(client, phone): phone for phone in TEST_NUMBERS}
        normal = {
            await create_call(client, phone, agent): agent
            for phone, agent in zip(unique_numbers(len(AGENTS), 1), AGENTS, strict=True)
        }
        calls = await wait_terminal(client, [*created, *normal], within=60)

        async def with_results() -> bool:
            # Vapi's and Retell's results follow the end: wait for them too.
            for call_id, agent in normal.items():
                calls[call_id] = (await client.get(f"/v1/calls/{call_id}")).json()
                if not calls[call_id]["recording_available"]:
                    return False
                if agent in ANALYZED and calls[call_id]["analysis"] is None:
                    return False
            return True

        try:
            await eventually(with_results, within=20, interval=0.3)
        except AssertionError:
            raise AssertionError(f"results missing: {[calls[c] for c in normal]}") from None
        for call_id in normal:
            recording = await client.get(f"/v1/calls/{call_id}/recording")
            assert recording.status_code == 200, recording.text
            assert recording.headers["content-type"] == "audio/wav"
            assert recording.content[:4] == b"RIFF"
            assert not any(w in str(recording.headers).lower() for w in PROVIDER_WORDS)

    for call_id, phone in created.items():
        status, reason = TEST_NUMBERS[phone]
        call = calls[call_id]
        assert call["status"] == status, f"{phone}: {dump(call)}"
        if reason:
            assert call["ended_reason"] == reason, f"{phone}: {dump(call)}"
        assert call["ended_at"] is not None
    for call_id, agent in normal.items():
        call = calls[call_id]
        assert call["status"] == "completed", f"{agent}: {dump(call)}"
        assert call["agent"] == agent
        assert call["transcript"]
        assert "agent:" in call["transcript"]
        assert isinstance(call["duration"], int)
        assert call["duration"] >= 0
        assert call["started_at"]
        assert call["ended_at"]
        assert call["ended_reason"] in {"customer_hangup", "completed"}
        assert call["error"] is None
        body = dump(call).lower()
        assert not any(word in body for word in PROVIDER_WORDS), body


async def test_calls_accepted_while_the_broker_is_down_are_dialed_once_it_returns(
    pipeline: Pipeline,
) -> None:
    phones = unique_numbers(10, 2)
    async with pipeline.client() as client:
        await pipeline.broker.cut()
        try:
            call_ids = [await create_call(client, phone) for phone in phones]
            for call_id in call_ids:
                assert (await client.get(f"/v1/calls/{call_id}")).json()["status"] == "queued"
        finally:
            await pipeline.broker.restore()
        calls = await wait_terminal(client, call_ids, within=90)
    assert {c["status"] for c in calls.values()} == {"completed"}, dump(calls)
    dials = await sim_dials(pipeline)
    assert all(dials[phone] == 1 for phone in phones), dials


async def test_a_dialer_killed_mid_batch_loses_no_call_and_dials_none_twice(
    pipeline: Pipeline,
) -> None:
    phones = unique_numbers(40, 3)
    dialer = pipeline.processes["dialer"]
    async with pipeline.client() as client:
        call_ids = list(await asyncio.gather(*(create_call(client, phone) for phone in phones)))

        async def some_dialed() -> bool:
            statuses = [
                (await client.get(f"/v1/calls/{cid}")).json()["status"] for cid in call_ids[:10]
            ]
            return any(s != "queued" for s in statuses)

        await eventually(some_dialed, within=30)
        dialer.kill()
        await asyncio.to_thread(dialer.start)
        calls = await wait_terminal(client, call_ids, within=120)
    assert {c["status"] for c in calls.values()} == {"completed"}, dump(
        {k: (v["status"], v["ended_reason"]) for k, v in calls.items()}
    )
    dials = await sim_dials(pipeline)
    assert all(dials[phone] == 1 for phone in phones), {p: dials[p] for p in phones}
