"""GET /v1/agents and GET /v1/usage: only what the tenant may see, only its own numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import CallStatus
from tests.support.api_client import ApiHarness, running_api

CALL = {"phone": "+996700000000", "agent": "altynai"}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-agents-usage"))) as harness:
        yield harness


async def test_agents_lists_the_enabled_agents_open_to_everyone(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.get("/v1/agents")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert [a["key"] for a in body["data"]] == [
        "akylai",
        "altai",
        "altynai",
        "retta",
        "vappy",
        "voxy",
    ]
    for agent in body["data"]:
        assert set(agent) == {"key", "name", "description", "language"}
    altynai = next(a for a in body["data"] if a["key"] == "altynai")
    assert (altynai["name"], altynai["language"]) == ("Altynai", "ky")


async def test_an_agent_reserved_for_a_tenant_is_listed_for_it_only(api: ApiHarness) -> None:
    _, vip = await api.tenant("vip")
    _, other = await api.tenant()
    assert "vip-only" in [a["key"] for a in (await vip.get("/v1/agents")).json()["data"]]
    assert "vip-only" not in [a["key"] for a in (await other.get("/v1/agents")).json()["data"]]


async def test_a_disabled_agent_disappears_and_comes_back(api: ApiHarness) -> None:
    _, client = await api.tenant()
    agent = await api.store.get_agent("altai")
    assert agent is not None
    await api.store.upsert_agent(agent.model_copy(update={"enabled": False}))
    try:
        keys = [a["key"] for a in (await client.get("/v1/agents")).json()["data"]]
        assert "altai" not in keys
        refused = await client.post("/v1/calls", json={**CALL, "agent": "altai"})
        assert refused.json()["error"]["code"] == "unknown_agent"
    finally:
        await api.store.upsert_agent(agent)
    assert "altai" in [a["key"] for a in (await client.get("/v1/agents")).json()["data"]]


async def test_usage_of_a_new_tenant_is_all_zeros(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.get("/v1/usage")
    assert response.status_code == 200
    assert response.json() == {
        "total_calls": 0,
        "total_seconds": 0,
        "active_calls": 0,
        "by_status": {s.value: 0 for s in CallStatus},
        "total_sessions": 0,
        "session_seconds": {"seconds": 0, "display": "0m 0s"},
        "active_sessions": 0,
        "concurrency": {"limit": 10, "active": 0, "queued": 0},
    }


async def test_usage_counts_the_tenants_own_calls_only(api: ApiHarness) -> None:
    _, client = await api.tenant()
    _, neighbour = await api.tenant()
    ids = [(await client.post("/v1/calls", json=CALL)).json()["call_id"] for _ in range(4)]
    for _ in range(3):
        await neighbour.post("/v1/calls", json=CALL)
    await api.store.update_call(ids[0], CallChanges(status=CallStatus.COMPLETED, duration=120))
    await api.store.update_call(ids[1], CallChanges(status=CallStatus.COMPLETED, duration=30))
    await api.store.update_call(ids[2], CallChanges(status=CallStatus.IN_PROGRESS))

    usage = (await client.get("/v1/usage")).json()
    assert usage["total_calls"] == 4
    assert usage["total_seconds"] == 150
    assert usage["active_calls"] == 2  # one in progress, one queued
    assert usage["by_status"] == {
        **{s.value: 0 for s in CallStatus},
        "completed": 2,
        "in_progress": 1,
        "queued": 1,
    }
    theirs = (await neighbour.get("/v1/usage")).json()
    assert (theirs["total_calls"], theirs["total_seconds"], theirs["active_calls"]) == (3, 0, 3)
