"""GET /v1/batches on both stores: newest first, cursor paging, filters (status as the
listing reads it, agent, created range), tenant-scoped; a batch's `started_at` set once
by its first dial, `finished_at` by its completion, shown in the listing and the batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard_shared.adapters.store.common.paging import Position
from switchboard_shared.calls.batch_control import note_batch_dialed
from switchboard_shared.domain.batches import BatchFilter, BatchStatus
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.runtime.operator import load_agents_file
from tests.integration.test_store_contract import plan_stages
from tests.support.api_client import AGENTS_FILE, EXTRA_AGENTS, ApiHarness, running_api
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=STORE_KINDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiHarness]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as store:
        await load_agents_file(store, AGENTS_FILE)
        for agent in EXTRA_AGENTS:
            await store.upsert_agent(agent)
        async with running_api(tmp_path, store=store) as harness:
            yield harness


async def create(client: httpx.AsyncClient, name: str, **options: Any) -> str:
    body = {"agent": "altynai", "name": name, "calls": [{"phone": "+996700000001"}], **options}
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["batch_id"]
    return batch_id


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of the listing, following the cursors."""
    found: list[dict[str, Any]] = []
    while True:
        response = await client.get("/v1/batches", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["data"]
        if page["next_cursor"] is None:
            return found
        params = {**params, "cursor": page["next_cursor"]}


async def test_lists_newest_first_in_pages_and_only_the_tenants_own(api: ApiHarness) -> None:
    _, client = await api.tenant()
    _, other = await api.tenant()
    ids = [await create(client, f"b{i}") for i in range(7)]
    foreign = await create(other, "theirs")

    first = (await client.get("/v1/batches", params={"limit": 3})).json()
    assert [b["batch_id"] for b in first["data"]] == ids[::-1][:3]
    assert first["next_cursor"] is not None
    everything = await listed(client, limit=3)
    assert [b["batch_id"] for b in everything] == ids[::-1]
    assert foreign not in {b["batch_id"] for b in everything}
    assert [b["batch_id"] for b in await listed(other)] == [foreign]

    item = everything[0]
    assert (item["name"], item["agent"], item["total"], item["status"]) == (
        "b6",
        "altynai",
        1,
        "running",
    )
    assert item["started_at"] is None
    assert item["finished_at"] is None
    assert "counts" not in item


async def test_a_cursor_continues_after_its_batch_when_newer_ones_arrive(api: ApiHarness) -> None:
    _, client = await api.tenant()
    old = [await create(client, f"old{i}") for i in range(4)]
    page = (await client.get("/v1/batches", params={"limit": 2})).json()
    await create(client, "newer")
    rest = await listed(client, limit=2, cursor=page["next_cursor"])
    assert [b["batch_id"] for b in rest] == old[::-1][2:]


async def test_bad_cursors_and_limits_are_refused(api: ApiHarness) -> None:
    _, client = await api.tenant()
    await create(client, "one")
    for params in ({"cursor": "nonsense"}, {"limit": 0}, {"limit": 101}, {"status": "nope"}):
        response = await client.get("/v1/batches", params=params)
        assert response.status_code in (400, 422), params
        code = response.json()["error"]["code"]
        assert code == ("invalid_cursor" if "cursor" in params else "validation_error")
    # A cursor of the call listing is not one of this listing's.
    for i in range(3):
        await client.post("/v1/calls", json={"phone": f"+99670000010{i}", "agent": "altynai"})
    calls_cursor = (await client.get("/v1/calls", params={"limit": 1})).json()["next_cursor"]
    response = await client.get("/v1/batches", params={"cursor": calls_cursor})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor")


async def test_filters_by_status_agent_and_creation_time(api: ApiHarness) -> None:
    _, client = await api.tenant()
    later = (utcnow() + timedelta(days=2)).isoformat()
    running = await create(client, "running")
    scheduled = await create(client, "scheduled", scheduled_at=later)
    paused = await create(client, "paused")
    await client.post(f"/v1/batches/{paused}/pause")
    canceled = await create(client, "canceled", scheduled_at=later)
    await client.post(f"/v1/batches/{canceled}/cancel")
    completed = await create(client, "completed")
    await api.store.mark_batch_completed(completed, utcnow())
    other_agent = (
        await client.post(
            "/v1/batches", json={"agent": "akylai", "calls": [{"phone": "+996700000001"}]}
        )
    ).json()["batch_id"]

    expected = {
        "running": {running, other_agent},
        "scheduled": {scheduled},
        "paused": {paused},
        "canceled": {canceled},
        "completed": {completed},
    }
    for status, ids in expected.items():
        found = await listed(client, status=status)
        assert {b["batch_id"] for b in found} == ids, status
        assert {b["status"] for b in found} == {status}
    assert [b["batch_id"] for b in await listed(client, agent="akylai")] == [other_agent]

    everything = await listed(client)
    middle = next(b for b in everything if b["batch_id"] == paused)["created_at"]
    newer = {b["batch_id"] for b in await listed(client, created_after=middle)}
    older = {b["batch_id"] for b in await listed(client, created_before=middle)}
    assert paused not in newer | older
    assert {canceled, completed, other_agent} <= newer
    assert {running, scheduled} <= older

    # A scheduled batch runs once its first call was dialed, even before it is due.
    await api.store.mark_batch_started(scheduled, utcnow())
    assert scheduled in {b["batch_id"] for b in await listed(client, status="running")}
    assert scheduled not in {b["batch_id"] for b in await listed(client, status="scheduled")}


async def test_started_at_is_set_once_by_the_first_dial(api: ApiHarness) -> None:
    _, client = await api.tenant()
    batch_id = await create(client, "start")
    first = utcnow().replace(microsecond=0)
    marks = [first + timedelta(seconds=i) for i in range(8)]
    # Concurrent dials of the batch's calls: one write wins, the rest change nothing.
    results = await asyncio.gather(*(api.store.mark_batch_started(batch_id, m) for m in marks))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    won = winners[0].started_at
    assert won in marks
    assert await api.store.mark_batch_started(batch_id, first - timedelta(days=1)) is None

    view = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert view["started_at"] is not None
    assert view["finished_at"] is None
    (item,) = [b for b in await listed(client) if b["batch_id"] == batch_id]
    assert item["started_at"] == view["started_at"]

    calls = (await client.get("/v1/calls", params={"batch_id": batch_id})).json()["data"]
    call = await api.store.get_call(calls[0]["call_id"])
    assert call is not None
    # The dialer's hook: a dial later than the first leaves the time as it was.
    await note_batch_dialed(api.store, call.model_copy(update={"dialed_at": utcnow()}))
    batch = await api.store.get_batch(batch_id)
    assert batch is not None
    assert batch.started_at == won

    done = utcnow()
    await api.store.mark_batch_completed(batch_id, done)
    view = (await client.get(f"/v1/batches/{batch_id}")).json()
    (item,) = [b for b in await listed(client) if b["batch_id"] == batch_id]
    assert view["finished_at"] is not None
    assert item["finished_at"] == view["finished_at"]
    assert item["status"] == "completed"


@pytest.mark.parametrize("status", [None, *BatchStatus])
async def test_mongo_batch_listing_is_served_by_its_index(
    mongodb_url: str, unique_name: str, status: BatchStatus | None
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.queries import batch_list_queries

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        filters = BatchFilter(status=status, created_after=utcnow() - timedelta(days=1))
        cursor_at = Position(utcnow() - timedelta(minutes=30), "5" * 36)
        queries = [
            *batch_list_queries("tenant-a", filters, utcnow(), None, 21),
            *batch_list_queries("tenant-a", filters, utcnow(), cursor_at, 21),
        ]
        for query in queries:
            explained = await client[unique_name].command(
                "explain",
                {
                    "find": "batches",
                    "filter": query.filter,
                    "sort": dict(query.sort),
                    "limit": 21,
                    "hint": query.hint,
                },
                verbosity="queryPlanner",
            )
            stages = plan_stages(explained["queryPlanner"]["winningPlan"])
            assert "COLLSCAN" not in [stage["stage"] for stage in stages], (query, explained)
            scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
            assert {stage.get("indexName") for stage in scans} == {"batches_by_tenant_created"}
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()
