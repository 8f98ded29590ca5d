"""/v1/blocked-numbers: block (normalized E.164, idempotent), list (paged, the tenant's
own), unblock; a call to a blocked number is 422 `number_blocked` at create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_client import ApiHarness, running_api

CALL = {"phone": "+996700000001", "agent": "altynai"}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-blocked"))) as harness:
        yield harness


@pytest.fixture
async def client(api: ApiHarness) -> httpx.AsyncClient:
    _, client = await api.tenant()
    return client


async def test_a_blocked_number_cannot_be_called_until_unblocked(
    client: httpx.AsyncClient,
) -> None:
    put = await client.put("/v1/blocked-numbers/%2B996700000001")
    assert put.status_code == 201, put.text
    assert put.json()["phone"] == "+996700000001"
    again = await client.put("/v1/blocked-numbers/+996700000001")  # a literal '+' works too
    assert again.status_code == 200
    assert again.json() == put.json()

    refused = await client.post("/v1/calls", json=CALL)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "number_blocked"

    deleted = await client.delete("/v1/blocked-numbers/%2B996700000001")
    assert deleted.status_code == 204
    assert (await client.post("/v1/calls", json=CALL)).status_code == 201
    missing = await client.delete("/v1/blocked-numbers/%2B996700000001")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "blocked_number_not_found"


async def test_an_invalid_number_is_422_invalid_phone(client: httpx.AsyncClient) -> None:
    for phone in ("996700000001", "%2B99600000000", "abc"):
        response = await client.put(f"/v1/blocked-numbers/{phone}")
        assert response.status_code == 422, (phone, response.text)
        assert response.json()["error"]["code"] == "invalid_phone"


async def test_blocks_belong_to_one_tenant_and_list_newest_first(api: ApiHarness) -> None:
    _, mine = await api.tenant()
    _, theirs = await api.tenant()
    phones = [f"+99670000010{i}" for i in range(5)]
    for phone in phones:
        assert (await mine.put(f"/v1/blocked-numbers/{phone}")).status_code == 201
    assert (await theirs.post("/v1/calls", json={**CALL, "phone": phones[0]})).status_code == 201

    listed: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await mine.get("/v1/blocked-numbers", params=params)).json()
        listed += [entry["phone"] for entry in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(listed) == sorted(phones)
    assert len(listed) == len(phones)
    assert (await theirs.get("/v1/blocked-numbers")).json() == {"data": [], "next_cursor": None}
    bad = await mine.get("/v1/blocked-numbers", params={"cursor": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"
