"""The /v1/sessions API over HTTP: create with defaults, one active per key, idempotency,
read, end, list, usage, isolation between tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from switchboard_shared.domain.sessions import SessionEndReason
from switchboard_shared.domain.tenants import new_api_key
from switchboard_shared.sessions.join_tokens import read_join_token
from tests.support.api_client import ApiHarness, create_tenant_with_key, running_api

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-sessions"))) as harness:
        yield harness


async def start(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json=body or {})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_empty_create_takes_the_tenants_config(api: ApiHarness) -> None:
    _, client = await api.tenant()
    await client.put("/v1/config", json={"tier": "advanced", "max_duration": 120})
    created = await start(client)
    assert set(created) == {
        "session_id",
        "status",
        "join_url",
        "max_duration",
        "tier",
        "expires_at",
    }
    assert created["session_id"].startswith("sess_")
    assert (created["status"], created["tier"], created["max_duration"]) == (
        "active",
        "advanced",
        120,
    )
    expires = datetime.fromisoformat(created["expires_at"])
    session = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
    started = datetime.fromisoformat(session["started_at"])
    assert expires - started == timedelta(seconds=120)


async def test_the_join_url_is_the_media_edge_with_a_token_not_the_key(api: ApiHarness) -> None:
    _, client = await api.tenant()
    created = await start(client)
    url = urlsplit(created["join_url"])
    assert url.scheme in ("ws", "wss")
    assert url.path == f"/media/sessions/{created['session_id']}"
    token = parse_qs(url.query)["token"][0]
    key = client.headers["Authorization"].removeprefix("Bearer ")
    assert key not in created["join_url"]
    claims = read_join_token(api.settings.session_token_secret.get_secret_value(), token)
    assert claims.session_id == created["session_id"]


async def test_request_values_beat_the_config(api: ApiHarness) -> None:
    _, client = await api.tenant()
    body = {
        "agent": "altynai",
        "tier": "advanced",
        "max_duration": 30,
        "variables": {"name": "Aida"},
        "metadata": {"order": "A-1"},
    }
    created = await start(client, body)
    session = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
    assert (session["agent"], session["tier"], session["max_duration"]) == (
        "altynai",
        "advanced",
        30,
    )
    assert (session["variables"], session["metadata"]) == ({"name": "Aida"}, {"order": "A-1"})


async def test_a_second_session_while_one_is_active_is_a_409_naming_it(api: ApiHarness) -> None:
    _, client = await api.tenant()
    first = await start(client)
    refused = await client.post("/v1/sessions", json={})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "session_active"
    assert error["session_id"] == first["session_id"]
    assert error["message"]
    ended = await client.delete(f"/v1/sessions/{first['session_id']}")
    assert ended.status_code == 200
    await start(client)


async def test_another_key_of_the_same_tenant_may_start_its_own(api: ApiHarness) -> None:
    tenant, raw = await create_tenant_with_key(api.store)
    second_raw, second_key = new_api_key(tenant.tenant_id)
    await api.store.add_api_key(second_key)
    await start(api.client(raw))
    await start(api.client(second_raw))
    assert (await api.client(raw).post("/v1/sessions", json={})).status_code == 409


async def test_concurrent_creates_for_one_key_make_one_session(api: ApiHarness) -> None:
    _, client = await api.tenant()
    responses = await asyncio.gather(*(client.post("/v1/sessions", json={}) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    made = next(r.json()["session_id"] for r in responses if r.status_code == 201)
    assert {r.json()["error"]["session_id"] for r in responses if r.status_code == 409} == {made}


async def test_an_idempotent_retry_returns_the_first_session(api: ApiHarness) -> None:
    _, client = await api.tenant()
    headers = {"Idempotency-Key": "create-1"}
    first = await client.post("/v1/sessions", json={"max_duration": 60}, headers=headers)
    again = await client.post("/v1/sessions", json={"max_duration": 60}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["session_id"] == first.json()["session_id"]
    other = await client.post("/v1/sessions", json={"max_duration": 90}, headers=headers)
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")


async def test_get_shows_a_live_elapsed_time_then_the_final_one(api: ApiHarness) -> None:
    _, client = await api.tenant()
    created = await start(client)
    session = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
    assert set(session) == {
        "session_id",
        "status",
        "tier",
        "agent",
        "elapsed",
        "max_duration",
        "started_at",
        "ended_at",
        "reason",
        "transcript",
        "variables",
        "metadata",
    }
    assert session["elapsed"]["total_seconds"] in (0, 1)
    assert (session["status"], session["ended_at"], session["reason"]) == ("active", None, None)
    ended_at = datetime.fromisoformat(session["started_at"]) + timedelta(seconds=47)
    await api.store.end_session(created["session_id"], SessionEndReason.MANUAL, ended_at)
    final = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
    assert final["elapsed"] == {"total_seconds": 47, "display": "0m 47s"}
    assert (final["status"], final["reason"]) == ("ended", "manual")


async def test_delete_ends_at_once_and_again_is_a_no_op(api: ApiHarness) -> None:
    _, client = await api.tenant()
    created = await start(client)
    ended = await client.delete(f"/v1/sessions/{created['session_id']}")
    assert ended.status_code == 200
    body = ended.json()
    assert (body["status"], body["reason"]) == ("ended", "manual")
    assert body["ended_at"] is not None
    again = await client.delete(f"/v1/sessions/{created['session_id']}")
    assert (again.status_code, again.json()) == (200, body)


async def test_another_tenants_or_an_unknown_session_is_a_404(api: ApiHarness) -> None:
    _, owner = await api.tenant()
    _, stranger = await api.tenant()
    created = await start(owner)
    path = f"/v1/sessions/{created['session_id']}"
    for response in (
        await stranger.get(path),
        await stranger.delete(path),
        await owner.get("/v1/sessions/sess_0000"),
        await owner.get("/v1/sessions/" + "x" * 300),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "session_not_found"
    assert (await owner.get(path)).json()["status"] == "active"


async def test_list_newest_first_with_status_and_pagination(api: ApiHarness) -> None:
    _, client = await api.tenant()
    ids = []
    for _ in range(3):
        created = await start(client)
        ids.append(created["session_id"])
        await client.delete(f"/v1/sessions/{created['session_id']}")
    active = await start(client)
    listed = (await client.get("/v1/sessions", params={"limit": 2})).json()
    assert listed["pagination"] == {"total": 4, "limit": 2, "offset": 0}
    assert [s["session_id"] for s in listed["sessions"]] == [active["session_id"], ids[2]]
    rest = (await client.get("/v1/sessions", params={"limit": 2, "offset": 2})).json()
    assert [s["session_id"] for s in rest["sessions"]] == [ids[1], ids[0]]
    ended = (await client.get("/v1/sessions", params={"status": "ended"})).json()
    assert ended["pagination"] == {"total": 3, "limit": 20, "offset": 0}
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "gone"}):
        response = await client.get("/v1/sessions", params=bad)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"max_duration": 5},
        {"max_duration": 4000},
        {"tier": "gold"},
        {"language": "zz"},
        {"prompt": "x" * 8193},
        {"provider": "simulator"},
        {"variables": "not an object"},
    ],
)
async def test_bad_create_bodies_are_refused(api: ApiHarness, body: dict[str, Any]) -> None:
    _, client = await api.tenant()
    response = await client.post("/v1/sessions", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert (await client.get("/v1/sessions")).json()["pagination"]["total"] == 0


async def test_an_unknown_agent_and_oversized_metadata_are_refused(api: ApiHarness) -> None:
    _, client = await api.tenant()
    unknown = await client.post("/v1/sessions", json={"agent": "nobody"})
    assert unknown.json()["error"]["code"] == "unknown_agent"
    big = await client.post("/v1/sessions", json={"metadata": {"x": "y" * 5000}})
    assert big.json()["error"]["code"] == "metadata_too_large"


async def test_usage_reports_sessions(api: ApiHarness) -> None:
    _, client = await api.tenant()
    first = await start(client)
    session = (await client.get(f"/v1/sessions/{first['session_id']}")).json()
    ended_at = datetime.fromisoformat(session["started_at"]) + timedelta(seconds=61)
    await api.store.end_session(first["session_id"], SessionEndReason.MANUAL, ended_at)
    await start(client)
    usage = (await client.get("/v1/usage")).json()
    assert usage["total_sessions"] == 2
    assert usage["session_seconds"] == {"seconds": 61, "display": "1m 1s"}
    assert usage["active_sessions"] == 1
    assert usage["total_calls"] == 0


async def test_sessions_need_an_api_key(api: ApiHarness) -> None:
    anonymous = api.client()
    assert (await anonymous.post("/v1/sessions", json={})).status_code == 401
    assert (await anonymous.get("/v1/sessions")).status_code == 401
