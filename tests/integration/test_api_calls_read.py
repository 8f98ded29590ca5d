"""GET /v1/calls/{id} and GET /v1/calls: tenant scoping, filters and cursor paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, CallView
from switchboard_shared.domain.tenants import Tenant
from tests.support.api_client import ApiHarness, running_api

CALL = {"phone": "+996700000000", "agent": "altynai"}
AGENTS = ("altynai", "akylai", "altai")
STATUSES = (CallStatus.QUEUED, CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.NO_ANSWER)
BASE = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
HISTORY = 130  # more than one page of the largest size


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-read"))) as harness:
        yield harness


@pytest.fixture(scope="module")
async def history(api: ApiHarness) -> tuple[Tenant, httpx.AsyncClient, list[Call]]:
    """A tenant with HISTORY past calls; pairs share a created_at to exercise the tie-break."""
    tenant, client = await api.tenant()
    calls = [
        Call(
            tenant_id=tenant.tenant_id,
            agent=AGENTS[i % 3],
            phone="+996700000000",
            status=STATUSES[i % 4],
            created_at=BASE + timedelta(minutes=i // 2),
            updated_at=BASE + timedelta(minutes=i // 2),
        )
        for i in range(HISTORY)
    ]
    for call in calls:
        await api.store.insert_call(call, idempotency_ttl_seconds=0)
    return tenant, client, calls


def newest_first(calls: list[Call]) -> list[str]:
    return [c.call_id for c in sorted(calls, key=lambda c: (c.created_at, c.call_id), reverse=True)]


async def page_through(
    client: httpx.AsyncClient, params: dict[str, Any], between_pages: Any = None
) -> list[str]:
    """Every call id the listing returns, following next_cursor to the end."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(200):
        response = await client.get(
            "/v1/calls", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "next_cursor"}
        assert len(body["data"]) <= int(params.get("limit", 20))
        ids += [c["call_id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
        if between_pages is not None:
            await between_pages()
    raise AssertionError("paging did not end")


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code
    return str(response.json()["error"]["message"])


# --- one call -------------------------------------------------------------------------


async def test_get_returns_the_normalized_call(api: ApiHarness) -> None:
    _, client = await api.tenant()
    body = {**CALL, "variables": {"name": "Aida"}, "metadata": {"ref": 7}}
    call_id = (await client.post("/v1/calls", json=body)).json()["call_id"]
    response = await client.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200
    view = response.json()
    assert set(view) == set(CallView.model_fields) | set(CallView.model_computed_fields)
    assert view["call_id"] == call_id
    assert view["status"] == "queued"
    assert (view["agent"], view["phone"]) == ("altynai", "+996700000000")
    assert (view["variables"], view["metadata"]) == ({"name": "Aida"}, {"ref": 7})
    assert view["transcript"] is None
    assert view["duration"] is None
    # The id is a UUID in any spelling.
    assert (await client.get(f"/v1/calls/{call_id.upper()}")).json()["call_id"] == call_id


async def test_a_finished_call_shows_transcript_duration_and_times(api: ApiHarness) -> None:
    _, client = await api.tenant()
    call_id = (await client.post("/v1/calls", json=CALL)).json()["call_id"]
    started = datetime.now(UTC)
    await api.store.update_call(
        call_id,
        CallChanges(
            status=CallStatus.COMPLETED,
            transcript="agent: Hello\nuser: Hi",
            duration=120,
            started_at=started,
            ended_at=started + timedelta(seconds=120),
            ended_reason="customer_hangup",
            ended_reason_raw="customer-ended-call",
            outcome="appointment_booked",
            analysis={"summary": "Booked.", "successful": True, "fields": {"day": "Tue"}},
            recording_available=True,
        ),
    )
    view = (await client.get(f"/v1/calls/{call_id}")).json()
    assert view["status"] == "completed"
    assert view["transcript"] == "agent: Hello\nuser: Hi"
    assert view["duration"] == 120
    assert view["started_at"]
    assert view["ended_at"]
    assert view["ended_reason"] == "customer_hangup"
    assert "ended_reason_raw" not in view
    assert view["outcome"] == "appointment_booked"
    assert view["analysis"] == {"summary": "Booked.", "successful": True, "fields": {"day": "Tue"}}
    assert (view["recording_available"], view["error"]) == (True, None)


@pytest.mark.parametrize(
    "call_id",
    [
        "123",
        "not-a-uuid",
        "00000000-0000-4000-8000-000000000000",  # well-formed, but no such call
        "%20",
    ],
)
async def test_unknown_ids_are_404_call_not_found(api: ApiHarness, call_id: str) -> None:
    _, client = await api.tenant()
    assert_error(await client.get(f"/v1/calls/{call_id}"), 404, "call_not_found")


async def test_another_tenants_call_is_404_never_403(api: ApiHarness) -> None:
    _, owner = await api.tenant()
    _, stranger = await api.tenant()
    call_id = (await owner.post("/v1/calls", json=CALL)).json()["call_id"]
    assert_error(await stranger.get(f"/v1/calls/{call_id}"), 404, "call_not_found")
    assert_error(await stranger.post(f"/v1/calls/{call_id}/cancel"), 404, "call_not_found")
    # ...and the stranger's attempt changed nothing.
    assert (await owner.get(f"/v1/calls/{call_id}")).json()["status"] == "queued"


# --- listing --------------------------------------------------------------------------


async def test_the_list_shows_only_the_tenants_own_calls(api: ApiHarness) -> None:
    _, first = await api.tenant()
    _, second = await api.tenant()
    mine = {(await first.post("/v1/calls", json=CALL)).json()["call_id"] for _ in range(3)}
    theirs = {(await second.post("/v1/calls", json=CALL)).json()["call_id"] for _ in range(2)}
    assert set(await page_through(first, {})) == mine
    assert set(await page_through(second, {})) == theirs


async def test_default_page_is_20_newest_first(
    history: tuple[Tenant, httpx.AsyncClient, list[Call]],
) -> None:
    _, client, calls = history
    body = (await client.get("/v1/calls")).json()
    assert [c["call_id"] for c in body["data"]] == newest_first(calls)[:20]
    assert body["next_cursor"]


async def test_paging_by_100_returns_every_call_once_in_order(
    history: tuple[Tenant, httpx.AsyncClient, list[Call]],
) -> None:
    _, client, calls = history
    first = (await client.get("/v1/calls", params={"limit": 100})).json()
    assert len(first["data"]) == 100
    assert first["next_cursor"]
    assert await page_through(client, {"limit": 100}) == newest_first(calls)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"status": "completed"}, lambda c: c.status is CallStatus.COMPLETED),
        ({"agent": "akylai"}, lambda c: c.agent == "akylai"),
        (
            {"status": "queued", "agent": "altynai"},
            lambda c: c.status is CallStatus.QUEUED and c.agent == "altynai",
        ),
        (
            {"created_after": "2026-01-10T08:10:00Z", "created_before": "2026-01-10T08:50:00Z"},
            lambda c: BASE + timedelta(minutes=10) < c.created_at < BASE + timedelta(minutes=50),
        ),
        (
            # Offsets are honoured: 14:20+06:00 is 08:20Z.
            {"created_after": "2026-01-10T14:20:00+06:00", "agent": "altai"},
            lambda c: c.created_at > BASE + timedelta(minutes=20) and c.agent == "altai",
        ),
        (
            # A timestamp without offset is UTC.
            {"created_before": "2026-01-10T08:30:00"},
            lambda c: c.created_at < BASE + timedelta(minutes=30),
        ),
        ({"created_after": "2030-01-01T00:00:00Z"}, lambda c: False),
        ({"agent": "nobody"}, lambda c: False),
    ],
)
async def test_filters_combine_with_paging_while_new_calls_arrive(
    api: ApiHarness,
    history: tuple[Tenant, httpx.AsyncClient, list[Call]],
    params: dict[str, Any],
    keep: Any,
) -> None:
    _, client, calls = history
    window = [c for c in calls if keep(c)]  # the matching calls when paging starts

    # Calls created while paging (through the API, now) are newer than any cursor: they
    # must neither show up on later pages nor push other calls off them.
    async def create_some() -> None:
        for agent in ("altynai", "akylai"):
            body = {"phone": "+996700000000", "agent": agent}
            call_id = (await client.post("/v1/calls", json=body)).json()["call_id"]
            created = await api.store.get_call(call_id)
            assert created is not None
            calls.append(created)  # later tests of this module expect it

    ids = await page_through(client, {**params, "limit": 7}, between_pages=create_some)
    assert ids == newest_first(window)


async def test_paging_ignores_calls_created_meanwhile(api: ApiHarness) -> None:
    _, client = await api.tenant()
    existing = [(await client.post("/v1/calls", json=CALL)).json()["call_id"] for _ in range(12)]
    expected = newest_first([c for c in [await api.store.get_call(i) for i in existing] if c])

    async def create_one() -> None:
        await client.post("/v1/calls", json=CALL)

    ids = await page_through(client, {"limit": 5}, between_pages=create_one)
    assert ids == expected


# --- listing errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "done"}, "status"),
        ({"status": "QUEUED"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"created_after": "2026-01-10T25:00:00Z"}, "created_after"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(
    history: tuple[Tenant, httpx.AsyncClient, list[Call]], params: dict[str, Any], field: str
) -> None:
    _, client, _ = history
    message = assert_error(await client.get("/v1/calls", params=params), 422, "validation_error")
    assert field in message


@pytest.mark.parametrize("cursor", ["abc", "!!!", "eyJ4IjoxfQ", "0" * 300])
async def test_a_cursor_we_did_not_issue_is_400_invalid_cursor(
    history: tuple[Tenant, httpx.AsyncClient, list[Call]], cursor: str
) -> None:
    _, client, _ = history
    assert_error(await client.get("/v1/calls", params={"cursor": cursor}), 400, "invalid_cursor")


async def test_limit_bounds_are_inclusive(
    history: tuple[Tenant, httpx.AsyncClient, list[Call]],
) -> None:
    _, client, _ = history
    assert len((await client.get("/v1/calls", params={"limit": 1})).json()["data"]) == 1
    assert len((await client.get("/v1/calls", params={"limit": 100})).json()["data"]) == 100
