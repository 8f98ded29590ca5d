"""Every /v1 route needs a live Bearer key; anything else is a 401 in the error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_client import ApiHarness, create_tenant_with_key, running_api

V1_ROUTES = [
    ("POST", "/v1/calls"),
    ("GET", "/v1/calls"),
    ("GET", "/v1/calls/00000000-0000-4000-8000-000000000000"),
    ("POST", "/v1/calls/00000000-0000-4000-8000-000000000000/cancel"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/usage"),
]
CALL = {"phone": "+996700000000", "agent": "altynai"}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-auth"))) as harness:
        yield harness


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.json()["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        None,  # missing
        "",
        "Bearer",  # no key
        "Bearer\tsk_tab_separated",
        "Basic dXNlcjpwYXNz",  # wrong scheme
        "Token sk_whatever",
        "sk_no_scheme_at_all",
        "Bearer sk_not_a_key_we_issued",  # unknown
        "Bearer " + "x" * 4000,  # absurdly long
    ],
)
async def test_requests_without_a_valid_key_get_401(
    api: ApiHarness, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    client = api.client()
    body = CALL if method == "POST" and path == "/v1/calls" else None
    response = await client.request(method, path, headers=headers, json=body)
    assert_unauthorized(response)


async def test_a_valid_key_is_accepted_with_any_scheme_case(api: ApiHarness) -> None:
    _, raw = await create_tenant_with_key(api.store)
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await api.client().get(
            "/v1/agents", headers={"Authorization": f"{scheme} {raw}"}
        )
        assert response.status_code == 200, response.text


async def test_a_revoked_key_is_refused_and_other_keys_keep_working(api: ApiHarness) -> None:
    tenant, raw = await create_tenant_with_key(api.store)
    _, other_raw = await create_tenant_with_key(api.store)
    client = api.client(raw)
    assert (await client.get("/v1/agents")).status_code == 200
    (key,) = await api.store.list_api_keys(tenant.tenant_id)
    assert await api.store.revoke_api_key(key.key_id)
    for method, path in V1_ROUTES:
        response = await client.request(
            method, path, json=CALL if path == "/v1/calls" and method == "POST" else None
        )
        assert_unauthorized(response)
    assert (await api.client(other_raw).get("/v1/agents")).status_code == 200


async def test_a_revoked_key_creates_no_call(api: ApiHarness) -> None:
    tenant, raw = await create_tenant_with_key(api.store)
    (key,) = await api.store.list_api_keys(tenant.tenant_id)
    await api.store.revoke_api_key(key.key_id)
    assert_unauthorized(await api.client(raw).post("/v1/calls", json=CALL))
    assert (await api.store.usage(tenant.tenant_id)).total_calls == 0


async def test_ops_and_docs_routes_need_no_key(api: ApiHarness) -> None:
    client = api.client()
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path


async def test_openapi_declares_the_bearer_scheme_on_every_v1_route(api: ApiHarness) -> None:
    document = (await api.client().get("/openapi.json")).json()
    assert document["info"]["title"] == "Switchboard API"
    schemes = document["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                assert operation.get("security"), (path, operation)
