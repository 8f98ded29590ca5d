"""Batches in the production shape (every service its own process, RabbitMQ, MongoDB):
every call of a batch is dialed once and ends, `batch.completed` comes once, a dialer
SIGKILLed mid-batch loses and doubles nothing, and pause, resume and cancel hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pipeline, dump
from tests.e2e.test_pipeline import TERMINAL, sim_dials, unique_numbers
from tests.support.net import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PIPELINE_ENV = {
    "SWITCHBOARD_DISPATCH_INTERVAL_SECONDS": "0.3",
    "SWITCHBOARD_BATCH_COMPLETION_INTERVAL_SECONDS": "0.5",
}


async def create_batch(client: httpx.AsyncClient, phones: list[str], **options: Any) -> str:
    body = {"agent": "altynai", "calls": [{"phone": p} for p in phones], **options}
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["total"] == len(phones)
    return str(response.json()["batch_id"])


async def batch(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/batches/{batch_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_batch(
    client: httpx.AsyncClient, batch_id: str, status: str, within: float
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal last
        last = await batch(client, batch_id)
        # Completed: also its batch.completed published (finished_at set with it).
        return last["status"] == status and (status != "completed" or bool(last["finished_at"]))

    try:
        await eventually(reached, within=within, interval=0.5)
    except AssertionError:
        raise AssertionError(f"batch not {status} after {within}s: {dump(last)}") from None
    return last


async def test_every_call_of_a_batch_is_dialed_once_and_the_batch_completes(
    pipeline: Pipeline,
) -> None:
    phones = unique_numbers(150, 20)
    async with pipeline.client() as client:
        batch_id = await create_batch(client, phones, name="e2e")
        done = await wait_for_batch(client, batch_id, "completed", within=240)
    assert done["counts"]["completed"] == len(phones), dump(done["counts"])
    assert done["finished_at"] is not None
    dials = await sim_dials(pipeline)
    assert all(dials[phone] == 1 for phone in phones), {p: dials[p] for p in phones}


async def test_a_dialer_killed_mid_batch_loses_no_call_and_dials_none_twice(
    pipeline: Pipeline,
) -> None:
    phones = unique_numbers(80, 21)
    dialer = pipeline.processes["dialer"]
    async with pipeline.client() as client:
        batch_id = await create_batch(client, phones)

        async def some_dialed() -> bool:
            counts = (await batch(client, batch_id))["counts"]
            return sum(counts[s] for s in ("dialing", "ringing", "in_progress", "completed")) > 0

        await eventually(some_dialed, within=60, interval=0.2)
        dialer.kill()
        await asyncio.to_thread(dialer.start)
        done = await wait_for_batch(client, batch_id, "completed", within=240)
    assert done["counts"]["completed"] == len(phones), dump(done["counts"])
    dials = await sim_dials(pipeline)
    assert all(dials[phone] == 1 for phone in phones), {p: dials[p] for p in phones}


async def test_pause_holds_resume_dials_and_cancel_ends_the_rest(pipeline: Pipeline) -> None:
    phones = unique_numbers(60, 22)
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    async with pipeline.client() as client:
        batch_id = await create_batch(client, phones, scheduled_at=soon)
        paused = (await client.post(f"/v1/batches/{batch_id}/pause")).json()
        assert paused["status"] == "paused"
        await asyncio.sleep(6)  # past the scheduled time: nothing may be dialed
        held = await batch(client, batch_id)
        assert held["counts"]["scheduled"] == len(phones), dump(held["counts"])
        dials = await sim_dials(pipeline)
        assert all(dials[phone] == 0 for phone in phones)

        resumed = (await client.post(f"/v1/batches/{batch_id}/resume")).json()
        assert resumed["status"] in ("running", "scheduled")

        async def some_ended() -> bool:
            return (await batch(client, batch_id))["counts"]["completed"] > 0

        await eventually(some_ended, within=60, interval=0.2)
        canceled = (await client.post(f"/v1/batches/{batch_id}/cancel")).json()
        assert canceled["status"] in ("canceled", "completed")
        done = await wait_for_batch(client, batch_id, "completed", within=120)
        calls: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"batch_id": batch_id, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/calls", params=params)).json()
            calls += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(calls) == len(phones)
    assert {c["status"] for c in calls} <= TERMINAL
    counts = done["counts"]
    assert counts["completed"] + counts["canceled"] == len(phones), dump(counts)
    assert counts["canceled"] > 0, dump(counts)
    dials = await sim_dials(pipeline)
    dialed = {c["phone"] for c in calls if c["status"] == "completed"}
    assert all(dials[p] == 1 for p in dialed)
    never = {c["phone"] for c in calls if c["status"] == "canceled" and not c["attempts"]}
    assert all(dials[p] == 0 for p in never), {p: dials[p] for p in never}


async def test_a_batch_keeps_to_its_max_concurrency_on_mongodb(pipeline: Pipeline) -> None:
    phones = unique_numbers(40, 24)
    live_seen: list[int] = []
    async with pipeline.client() as client:
        batch_id = await create_batch(client, phones, max_concurrency=3)

        async def finished() -> bool:
            counts = (await batch(client, batch_id))["counts"]
            live_seen.append(sum(counts[s] for s in ("dialing", "ringing", "in_progress")))
            return counts["completed"] == len(phones)

        await eventually(finished, within=240, interval=0.2)
    assert max(live_seen) <= 3, live_seen
    assert max(live_seen) == 3  # the limit was reached
    dials = await sim_dials(pipeline)
    assert all(dials[phone] == 1 for phone in phones)
