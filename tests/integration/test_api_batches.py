"""POST /v1/batches (JSON and CSV): all-or-nothing validation, blocked and duplicate
rows, idempotency; GET with counts; GET /v1/calls?batch_id=; pause, resume, cancel with
the dispatcher holding and canceling the batch's due calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard_dialer.dispatch import CallDispatcher
from switchboard_shared.domain.calls import CallStatus
from tests.support.api_client import ApiHarness, running_api

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-batches"))) as harness:
        yield harness


@pytest.fixture
async def client(api: ApiHarness) -> httpx.AsyncClient:
    _, client = await api.tenant()
    return client


def phones(count: int, start: int = 0) -> list[str]:
    return [f"+99670{i:07d}" for i in range(start, start + count)]


def rows(numbers: list[str]) -> list[dict[str, Any]]:
    return [{"phone": p, "variables": {"n": i}} for i, p in enumerate(numbers)]


async def create(client: httpx.AsyncClient, body: dict[str, Any], **params: Any) -> httpx.Response:
    return await client.post("/v1/batches", json=body, params=params)


async def all_calls(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"batch_id": batch_id, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/calls", params=params)).json()
        found += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_a_json_batch_creates_its_calls_and_counts_them(client: httpx.AsyncClient) -> None:
    response = await create(
        client, {"agent": "altynai", "name": "march", "calls": rows(phones(250))}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["status"], created["total"]) == ("running", 250)

    batch = (await client.get(f"/v1/batches/{created['batch_id']}")).json()
    assert batch["counts"] == {s.value: 0 for s in CallStatus} | {"scheduled": 250}
    assert (batch["attempts"], batch["name"], batch["status"]) == (0, "march", "running")
    calls = await all_calls(client, created["batch_id"])
    assert len(calls) == 250
    assert {c["batch_id"] for c in calls} == {created["batch_id"]}
    assert sorted(c["phone"] for c in calls) == phones(250)
    other = (await client.get("/v1/calls", params={"batch_id": "nope"})).json()
    assert other["data"] == []


async def test_any_bad_row_refuses_the_whole_batch(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    good = rows(phones(5, 100))
    bad = [
        *good[:2],
        {"phone": "12345"},
        good[2],
        {"phone": good[0]["phone"]},  # a duplicate
        {"phone": "+996700000300", "variables": {"x": "y" * 20000}},
    ]
    response = await create(client, {"agent": "altynai", "calls": bad})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_batch"
    assert [(r["row"], r["code"]) for r in error["rows"]] == [
        (3, "invalid_phone"),
        (5, "duplicate_phone"),
        (6, "variables_too_large"),
    ]
    listed = (await client.get("/v1/calls")).json()["data"]
    assert listed == []  # nothing was created
    allowed = await create(
        client, {"agent": "altynai", "calls": [*good, good[0]]}, allow_duplicates="true"
    )
    assert allowed.status_code == 201
    assert allowed.json()["total"] == 6


async def test_at_most_100_bad_rows_are_listed(client: httpx.AsyncClient) -> None:
    response = await create(client, {"agent": "altynai", "calls": [{"phone": "x"}] * 150})
    error = response.json()["error"]
    assert len(error["rows"]) == 100
    assert error["rows"][-1]["row"] == 100
    assert "150 of 150" in error["message"]


async def test_blocked_numbers_are_reported_or_skipped(client: httpx.AsyncClient) -> None:
    numbers = phones(4, 400)
    assert (await client.put(f"/v1/blocked-numbers/{numbers[1]}")).status_code == 201
    refused = await create(client, {"agent": "altynai", "calls": rows(numbers)})
    assert refused.status_code == 422
    assert [(r["row"], r["code"]) for r in refused.json()["error"]["rows"]] == [
        (2, "number_blocked")
    ]
    skipped = await create(
        client, {"agent": "altynai", "calls": rows(numbers)}, skip_blocked="true"
    )
    assert skipped.status_code == 201, skipped.text
    assert (skipped.json()["total"], skipped.json()["skipped_blocked"]) == (3, 1)


async def test_a_csv_batch_takes_its_options_as_query_parameters(
    client: httpx.AsyncClient,
) -> None:
    text = "phone,name,order\n+996700000500,Aida,1\n+996700000501,Bek,\n"
    response = await client.post(
        "/v1/batches",
        content=text,
        headers={"Content-Type": "text/csv"},
        params={"agent": "altynai", "name": "csv", "scheduled_at": "2099-01-01T09:00:00Z"},
    )
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["total"]) == ("scheduled", 2)
    batch = (await client.get(f"/v1/batches/{response.json()['batch_id']}")).json()
    assert batch["status"] == "scheduled"
    calls = await all_calls(client, response.json()["batch_id"])
    variables = {c["phone"]: c["variables"] for c in calls}
    assert variables == {
        "+996700000500": {"name": "Aida", "order": "1"},
        "+996700000501": {"name": "Bek"},
    }
    no_phone = await client.post(
        "/v1/batches",
        content="tel\n1\n",
        headers={"Content-Type": "text/csv"},
        params={"agent": "altynai"},
    )
    assert no_phone.status_code == 422
    assert no_phone.json()["error"]["code"] == "invalid_batch"


async def post_csv(client: httpx.AsyncClient, text: str, **params: Any) -> httpx.Response:
    return await client.post(
        "/v1/batches", content=text, headers={"Content-Type": "text/csv"}, params=params
    )


async def test_a_csv_batch_takes_window_retry_and_metadata_as_json_query_values(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    window = {"start": "09:00", "end": "18:00", "days": ["mon", "tue"], "timezone": "UTC"}
    retry = {"on": ["no_answer"], "max_attempts": 4, "delay_seconds": 60}
    response = await post_csv(
        client,
        "phone\n+996700000520\n+996700000521\n",
        agent="altynai",
        calling_window=json.dumps(window),
        retry=json.dumps(retry),
        metadata=json.dumps({"campaign": "csv"}),
        max_concurrency="5",
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["batch_id"]
    view = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert (view["metadata"], view["max_concurrency"]) == ({"campaign": "csv"}, 5)
    for listed in await all_calls(client, batch_id):
        call = await api.store.get_call(listed["call_id"])
        assert call is not None
        assert call.retry == retry
        assert call.calling_window is not None
        assert call.calling_window["days"] == ["mon", "tue"]
        assert call.calling_window["start"].startswith("09:00")
        # Due inside the window: a Monday or Tuesday between 09:00 and 18:00 UTC.
        assert call.next_attempt_at is not None
        due = call.next_attempt_at
        assert due.weekday() in (0, 1)
        assert 9 <= due.hour < 18


BAD_OPTIONS: list[dict[str, Any]] = [
    {"retry": {"max_attempts": 11}},
    {"retry": {"delay_seconds": 59}},
    {"retry": {"on": ["completed"]}},
    {"retry": {"max_attempts": 2, "surprise": True}},
    {"calling_window": {"start": "20:00", "end": "09:00"}},
    {"calling_window": {"start": "09:00", "end": "18:00", "timezone": "Mars/Olympus"}},
    {"calling_window": {"start": "09:00", "end": "18:00", "days": []}},
    {"metadata": ["not", "an", "object"]},
]


@pytest.mark.parametrize("option", BAD_OPTIONS)
async def test_csv_query_options_are_refused_as_the_json_body_refuses_them(
    client: httpx.AsyncClient, option: dict[str, Any]
) -> None:
    phone = "+996700000530"
    as_json = await create(client, {"agent": "altynai", "calls": [{"phone": phone}], **option})
    as_csv = await post_csv(
        client,
        f"phone\n{phone}\n",
        agent="altynai",
        **{k: json.dumps(v) for k, v in option.items()},
    )
    assert as_json.status_code == as_csv.status_code, (as_json.text, as_csv.text)
    assert as_json.status_code in (400, 422)
    assert as_json.json()["error"]["code"] == as_csv.json()["error"]["code"]


async def test_a_csv_query_option_that_is_not_json_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    for name in ("calling_window", "retry", "metadata"):
        response = await post_csv(
            client, "phone\n+996700000540\n", agent="altynai", **{name: "{start: 9}"}
        )
        assert response.status_code == 422, name
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert name in error["message"]


async def test_idempotency_key_replays_the_batch(client: httpx.AsyncClient) -> None:
    body = {"agent": "altynai", "calls": rows(phones(3, 600))}
    headers = {"Idempotency-Key": "batch-1"}
    first = await client.post("/v1/batches", json=body, headers=headers)
    again = await client.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["batch_id"] == first.json()["batch_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await all_calls(client, first.json()["batch_id"])) == 3
    other = await client.post("/v1/batches", json={**body, "name": "other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_pause_holds_resume_releases_and_cancel_ends_what_was_not_dialed(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    created = (await create(client, {"agent": "altynai", "calls": rows(phones(30, 700))})).json()
    batch_id = created["batch_id"]
    paused = (await client.post(f"/v1/batches/{batch_id}/pause")).json()
    assert paused["status"] == "paused"

    dispatcher = CallDispatcher(api.store, api.bus)
    await dispatcher.run_once()  # every call is due: all are held, none queued
    calls = await all_calls(client, batch_id)
    assert {c["status"] for c in calls} == {"scheduled"}
    assert {c["next_attempt_at"] for c in calls} == {None}

    resumed = (await client.post(f"/v1/batches/{batch_id}/resume")).json()
    assert resumed["status"] == "running"
    assert all(c["next_attempt_at"] for c in await all_calls(client, batch_id))
    queued = await dispatcher.run_once()
    assert queued >= 30  # this batch's calls (the module's other batches may be due too)
    batch = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert batch["counts"]["queued"] == 30  # no dialer runs here: they stay queued
    assert batch["status"] == "running"

    canceled = (await client.post(f"/v1/batches/{batch_id}/cancel")).json()
    assert canceled["counts"]["canceled"] == 30
    assert canceled["status"] == "completed"
    again = await client.post(f"/v1/batches/{batch_id}/cancel")
    assert again.status_code == 200
    assert (await client.post(f"/v1/batches/{batch_id}/pause")).status_code == 409


async def test_another_tenants_batch_is_404(api: ApiHarness, client: httpx.AsyncClient) -> None:
    created = (await create(client, {"agent": "altynai", "calls": rows(phones(1, 900))})).json()
    _, other = await api.tenant()
    for response in (
        await other.get(f"/v1/batches/{created['batch_id']}"),
        await other.post(f"/v1/batches/{created['batch_id']}/cancel"),
        await other.get("/v1/batches/not-a-uuid"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "batch_not_found"


# --- concurrency -------------------------------------------------------------------------


async def test_a_batch_max_concurrency_over_the_tenants_limit_is_refused(
    api: ApiHarness,
) -> None:
    tenant, client = await api.tenant()
    body = {"agent": "altynai", "calls": rows(phones(3)), "max_concurrency": 11}

    refused = await create(client, body)

    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "max_concurrency_too_high"
    assert "10" in error["message"]
    listed = (await client.get("/v1/batches")).json()
    assert listed["data"] == []  # nothing was created
    # Within the limit, or once an operator raises it, the same batch is taken.
    assert (await create(client, body | {"max_concurrency": 10})).status_code == 201
    await api.store.set_tenant_limits(tenant.tenant_id, max_concurrent_calls=20)
    assert (await create(client, body)).status_code == 201
    csv_refused = await client.post(
        "/v1/batches",
        content="phone\n+15005550001\n",
        headers={"Content-Type": "text/csv"},
        params={"agent": "altynai", "max_concurrency": 21},
    )
    assert csv_refused.status_code == 422
    assert csv_refused.json()["error"]["code"] == "max_concurrency_too_high"


async def test_usage_shows_the_tenants_concurrency(api: ApiHarness) -> None:
    tenant, client = await api.tenant()
    await api.store.set_tenant_limits(tenant.tenant_id, max_concurrent_calls=4)
    for number in phones(3, start=500):
        created = await client.post("/v1/calls", json={"phone": number, "agent": "altynai"})
        assert created.status_code == 201
    first = (await client.get("/v1/calls", params={"limit": 1})).json()["data"][0]
    # The dialer takes a slot per placed call: one is placed.
    assert await api.store.take_slot(f"tenant:{tenant.tenant_id}", first["call_id"], 4)

    usage = (await client.get("/v1/usage")).json()

    assert usage["concurrency"] == {"limit": 4, "active": 1, "queued": 3}
