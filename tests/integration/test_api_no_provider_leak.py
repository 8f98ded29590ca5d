"""No response of any route names a provider, a provider agent id, a caller number or a
provider call id: customers only ever see Switchboard's own ids and schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from switchboard_shared.domain.calls import CallStatus
from tests.support.api_client import ApiHarness, running_api

PROVIDER_NAMES = ("simulator", "vocode", "voxpria")


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-leaks"))) as harness:
        yield harness


async def test_no_response_reveals_provider_details(api: ApiHarness) -> None:
    _, client = await api.tenant()
    _, vip = await api.tenant("vip")
    responses: list[httpx.Response] = []

    async def call(c: httpx.AsyncClient, method: str, path: str, **kw: object) -> httpx.Response:
        response = await c.request(method, path, **kw)  # type: ignore[arg-type]
        responses.append(response)
        return response

    # Calls on every provider, taken as far as a dialer and a provider would take them.
    provider_call_ids: list[str] = []
    ids: dict[str, str] = {}
    for who, agent, provider in (
        (client, "altynai", "simulator"),
        (client, "voxy", "voxpria"),
        (vip, "vip-only", "vocode"),
        (client, "akylai", "simulator"),
    ):
        headers = {"Idempotency-Key": f"leak-{agent}"}
        body = {"phone": "+996700000000", "agent": agent, "variables": {"name": "Aida"}}
        created = await call(who, "POST", "/v1/calls", json=body, headers=headers)
        await call(who, "POST", "/v1/calls", json=body, headers=headers)  # replay
        call_id = created.json()["call_id"]
        ids[agent] = call_id
        provider_call_id = f"{provider}-call-{uuid.uuid4().hex}"
        provider_call_ids.append(provider_call_id)
        await api.store.update_call(
            call_id,
            {
                "status": CallStatus.IN_PROGRESS,
                "provider": provider,
                "provider_call_id": provider_call_id,
            },
        )
    await api.store.update_call(
        ids["altynai"],
        {"status": CallStatus.COMPLETED, "transcript": "agent: Hello\nuser: Hi", "duration": 12},
    )

    for who in (client, vip):
        await call(who, "GET", "/v1/calls")
        await call(who, "GET", "/v1/calls", params={"limit": 1})
        await call(who, "GET", "/v1/agents")
        await call(who, "GET", "/v1/usage")
    for agent, call_id in ids.items():
        who = vip if agent == "vip-only" else client
        await call(who, "GET", f"/v1/calls/{call_id}")
        await call(who, "POST", f"/v1/calls/{call_id}/cancel")  # 202, or 409 once ended
    # Error paths too, including ones that name agents.
    for agent in ("vip-only", "retired", "nobody"):
        await call(client, "POST", "/v1/calls", json={"phone": "+996700000000", "agent": agent})
    await call(client, "POST", "/v1/calls", json={"phone": "bad", "agent": "voxy"})
    await call(client, "POST", "/v1/calls", json={"phone": "+996700000000", "provider": "x"})
    await call(client, "GET", f"/v1/calls/{ids['vip-only']}")  # another tenant's: 404
    await call(client, "GET", "/v1/calls", params={"cursor": "x"})
    await call(client, "DELETE", "/v1/agents")
    await call(client, "GET", "/v1/nope")
    anonymous = api.client()
    for path in ("/v1/calls", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"):
        await call(anonymous, "GET", path)

    agents = await api.store.list_agents()
    secrets = [
        *PROVIDER_NAMES,
        *provider_call_ids,
        *(a.provider_agent_id for a in agents),
        *(a.from_number for a in agents if a.from_number),
    ]
    statuses = {r.status_code for r in responses}
    assert {200, 201, 202, 400, 401, 404, 405, 409, 422} <= statuses
    for response in responses:
        text = response.text.lower() + str(dict(response.headers)).lower()
        for secret in secrets:
            assert secret.lower() not in text, (response.request.url, secret, response.text)
