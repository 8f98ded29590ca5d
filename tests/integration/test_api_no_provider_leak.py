"""No response of any route names a provider, a provider agent id, a caller number, a
provider call id, a provider's raw end code or its recording address (host, path or
headers): customers only ever see Switchboard's own ids and schema."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from switchboard_provider_sim import create_app
from switchboard_shared.adapters.providers import build_providers
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.ports import Provider, ProviderCallRequest
from switchboard_testing.servers import serving
from tests.integration.test_provider_sim import (
    NORMAL,
    RETELL_KEY,
    SIM_KEY,
    VAPI_KEY,
    VOCODE_KEY,
    VOXPRIA_KEY,
    CallbackReceiver,
    sim_settings,
)
from tests.support.api_client import ApiHarness, running_api
from tests.support.net import eventually

PROVIDER_NAMES = ("simulator", "vocode", "voxpria", "vapi", "retell")
RAW_END_CODES = ("customer-ended-call", "user_hangup", "error_unknown")


@pytest.fixture(scope="module")
async def providers() -> AsyncIterator[tuple[str, dict[str, Provider]]]:
    """A running simulator and every adapter pointed at it: (its URL, adapters)."""
    receiver = CallbackReceiver()
    async with contextlib.AsyncExitStack() as stack:
        receiver.url = await stack.enter_async_context(serving(receiver.app()))
        sim_url = await stack.enter_async_context(serving(create_app(sim_settings(receiver.url))))
        adapters = build_providers(sim_settings(receiver.url, sim_url))
        for adapter in adapters.values():
            stack.push_async_callback(adapter.close)
        yield sim_url, adapters


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, providers: tuple[str, dict[str, Provider]]
) -> AsyncIterator[ApiHarness]:
    path = Path(tmp_path_factory.mktemp("api-leaks"))
    async with running_api(path, providers=providers[1]) as harness:
        yield harness


async def recorded_provider_call(provider: Provider) -> str:
    """A provider call that completed with a recording; its provider call id."""
    placed = await provider.create_call(
        ProviderCallRequest(
            call_id=str(uuid.uuid4()),
            to_number=NORMAL,
            from_number=None,
            provider_agent_id="agent-1",
            variables={},
            callback_url="http://127.0.0.1:9/unused",
        )
    )

    async def recorded() -> bool:
        return bool((await provider.get_call(placed.provider_call_id)).recording_available)

    await eventually(recorded, within=10)
    return placed.provider_call_id


async def test_no_response_reveals_provider_details(
    api: ApiHarness, providers: tuple[str, dict[str, Provider]]
) -> None:
    sim_url, adapters = providers
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
        (client, "vappy", "vapi"),
        (client, "retta", "retell"),
    ):
        headers = {"Idempotency-Key": f"leak-{agent}"}
        body = {"phone": "+996700000000", "agent": agent, "variables": {"name": "Aida"}}
        created = await call(who, "POST", "/v1/calls", json=body, headers=headers)
        await call(who, "POST", "/v1/calls", json=body, headers=headers)  # replay
        call_id = created.json()["call_id"]
        ids[agent] = call_id
        # Real provider calls with recordings, so the recording route has one to stream.
        provider_call_id = await recorded_provider_call(adapters[provider])
        provider_call_ids.append(provider_call_id)
        await api.store.update_call(
            call_id,
            CallChanges(
                status=CallStatus.IN_PROGRESS, provider=provider, provider_call_id=provider_call_id
            ),
        )
    await api.store.update_call(
        ids["altynai"],
        CallChanges(status=CallStatus.COMPLETED, transcript="agent: Hello\nuser: Hi", duration=12),
    )
    for agent, raw in zip(("altynai", "vappy", "retta"), RAW_END_CODES, strict=True):
        await api.store.update_call(
            ids[agent],
            CallChanges(
                status=CallStatus.COMPLETED,
                ended_reason="customer_hangup",
                ended_reason_raw=raw,
                outcome="successful",
                analysis={"summary": "Done.", "successful": True, "fields": {"x": 1}},
                recording_available=True,
            ),
        )
    await api.store.update_call(ids["voxy"], CallChanges(recording_available=True))

    for who in (client, vip):
        await call(who, "GET", "/v1/calls")
        await call(who, "GET", "/v1/calls", params={"limit": 1})
        await call(who, "GET", "/v1/agents")
        await call(who, "GET", "/v1/usage")
    for agent, call_id in ids.items():
        who = vip if agent == "vip-only" else client
        await call(who, "GET", f"/v1/calls/{call_id}")
        await call(who, "GET", f"/v1/calls/{call_id}/recording")  # 200, or 404 before
        await call(who, "GET", f"/v1/calls/{call_id}/events")  # the timeline
        await call(who, "GET", f"/v1/calls/{call_id}/recording", headers={"Range": "bytes=0-9"})
        await call(who, "POST", f"/v1/calls/{call_id}/cancel")  # 202, or 409 once ended
    # Error paths too, including ones that name agents.
    for agent in ("vip-only", "retired", "nobody"):
        await call(client, "POST", "/v1/calls", json={"phone": "+996700000000", "agent": agent})
    await call(client, "POST", "/v1/calls", json={"phone": "bad", "agent": "voxy"})
    await call(client, "POST", "/v1/calls", json={"phone": "+996700000000", "provider": "x"})
    await call(client, "GET", f"/v1/calls/{ids['vip-only']}")  # another tenant's: 404
    await call(client, "GET", f"/v1/calls/{ids['vip-only']}/recording")
    await call(client, "GET", f"/v1/calls/{ids['retta']}/recording", headers={"Range": "bytes=9-"})
    await call(client, "GET", "/v1/calls", params={"cursor": "x"})
    await call(client, "DELETE", "/v1/agents")
    await call(client, "GET", "/v1/nope")
    anonymous = api.client()
    for path in ("/v1/calls", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"):
        await call(anonymous, "GET", path)

    agents = await api.store.list_agents()
    sim_host = httpx.URL(sim_url)
    secrets = [
        *PROVIDER_NAMES,
        *provider_call_ids,
        *(r.provider_agent_id for a in agents for r in a.routes if r.provider_agent_id),
        *(r.from_number for a in agents for r in a.routes if r.from_number),
        *RAW_END_CODES,
        "ended_reason_raw",
        f"{sim_host.host}:{sim_host.port}",  # the provider's host, its recording URLs
        "/recordings/",
        *(SIM_KEY, VOCODE_KEY, VOXPRIA_KEY, VAPI_KEY, RETELL_KEY),
    ]
    statuses = {r.status_code for r in responses}
    assert {200, 201, 202, 206, 400, 401, 404, 405, 409, 422} <= statuses
    recordings = [r for r in responses if r.request.url.path.endswith("/recording")]
    assert {r.status_code for r in recordings} >= {200, 206, 404}
    for response in recordings:
        # Only headers we set ourselves: nothing of the provider's answer is copied.
        assert set(response.headers) <= {
            "content-type",
            "content-length",
            "content-range",
            "accept-ranges",
            "cache-control",
            "date",
            "server",
            "x-request-id",
            "traceparent",
        }, response.headers
    for response in responses:
        text = response.text.lower() + str(dict(response.headers)).lower()
        for secret in secrets:
            assert secret.lower() not in text, (response.request.url, secret, response.text)
