"""`GET /v1/calls/{id}/recording` over real HTTP: the API streams the recording it
fetches from a running simulator with the provider's credentials, whole or by range,
and says `recording_not_available` until there is one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from switchboard_provider_sim import create_app
from switchboard_provider_sim.recordings import tone_wav
from switchboard_shared.adapters.providers import build_providers
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.ports import Provider, ProviderCallRequest
from switchboard_testing.servers import serving
from tests.integration.test_provider_sim import NORMAL, CallbackReceiver, sim_settings
from tests.support.api_client import ApiHarness, running_api
from tests.support.net import eventually

NAMES = ("simulator", "vocode", "voxpria", "vapi", "retell")
NO_RECORDING = "+15005550012"
CALL = {"phone": "+996700000000", "agent": "altynai"}


@dataclass
class Setup:
    api: ApiHarness
    providers: dict[str, Provider]
    sim_url: str


@pytest.fixture(scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    receiver = CallbackReceiver()
    async with contextlib.AsyncExitStack() as stack:
        receiver.url = await stack.enter_async_context(serving(receiver.app()))
        sim_url = await stack.enter_async_context(serving(create_app(sim_settings(receiver.url))))
        settings = sim_settings(receiver.url, sim_url)
        providers = build_providers(settings)
        for provider in providers.values():
            stack.push_async_callback(provider.close)
        api = await stack.enter_async_context(
            running_api(
                Path(tmp_path_factory.mktemp("api-recordings")),
                settings=settings,
                providers=providers,
            )
        )
        yield Setup(api, providers, sim_url)


async def ended_call(setup: Setup, client: httpx.AsyncClient, name: str, number: str) -> str:
    """A call of ours that `name` placed and completed, as ingest would have left it."""
    call_id: str = (await client.post("/v1/calls", json=CALL)).json()["call_id"]
    provider = setup.providers[name]
    placed = await provider.create_call(
        ProviderCallRequest(
            call_id=call_id,
            to_number=number,
            from_number=None,
            provider_agent_id="agent-1",
            variables={},
            callback_url="http://127.0.0.1:9/unused",
        )
    )

    async def ended() -> bool:
        return (await provider.get_call(placed.provider_call_id)).status.is_terminal

    await eventually(ended, within=10)
    final = await provider.get_call(placed.provider_call_id)
    await setup.api.store.update_call(
        call_id,
        CallChanges(
            status=CallStatus.COMPLETED,
            provider=name,
            provider_call_id=placed.provider_call_id,
            recording_available=bool(final.recording_available),
        ),
    )
    return call_id


@pytest.mark.parametrize("name", NAMES)
async def test_the_recording_streams_whole_and_by_range(setup: Setup, name: str) -> None:
    _, client = await setup.api.tenant()
    call_id = await ended_call(setup, client, name, NORMAL)
    audio = tone_wav()

    assert (await client.get(f"/v1/calls/{call_id}")).json()["recording_available"] is True
    whole = await client.get(f"/v1/calls/{call_id}/recording")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["content-length"] == str(len(audio))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == audio

    part = await client.get(f"/v1/calls/{call_id}/recording", headers={"Range": "bytes=44-1043"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 44-1043/{len(audio)}"
    assert part.headers["content-length"] == "1000"
    assert part.content == audio[44:1044]

    tail = await client.get(f"/v1/calls/{call_id}/recording", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, audio[-10:])

    beyond = await client.get(
        f"/v1/calls/{call_id}/recording", headers={"Range": f"bytes={len(audio)}-"}
    )
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"


async def test_no_recording_until_there_is_one(setup: Setup) -> None:
    _, client = await setup.api.tenant()
    queued = (await client.post("/v1/calls", json=CALL)).json()["call_id"]
    without = await ended_call(setup, client, "simulator", NO_RECORDING)

    for call_id in (queued, without):
        response = await client.get(f"/v1/calls/{call_id}/recording")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "recording_not_available"


async def test_a_recording_the_provider_no_longer_has_is_not_available(setup: Setup) -> None:
    _, client = await setup.api.tenant()
    call_id = await ended_call(setup, client, "voxpria", NO_RECORDING)
    await setup.api.store.update_call(call_id, CallChanges(recording_available=True))  # stale flag

    response = await client.get(f"/v1/calls/{call_id}/recording")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "recording_not_available"


async def test_another_tenants_recording_is_not_found(setup: Setup) -> None:
    _, owner = await setup.api.tenant()
    _, stranger = await setup.api.tenant()
    call_id = await ended_call(setup, owner, "simulator", NORMAL)

    response = await stranger.get(f"/v1/calls/{call_id}/recording")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "call_not_found"
    assert (await stranger.get(f"/v1/calls/{uuid.uuid4()}/recording")).status_code == 404
    anonymous = setup.api.client()
    assert (await anonymous.get(f"/v1/calls/{call_id}/recording")).status_code == 401


async def test_a_provider_that_is_down_is_a_503_not_a_leak(setup: Setup, tmp_path: Path) -> None:
    _, client = await setup.api.tenant()
    call_id = await ended_call(setup, client, "simulator", NORMAL)
    down = build_providers(sim_settings("http://127.0.0.1:9", "http://127.0.0.1:9"))
    try:
        async with running_api(
            tmp_path,
            settings=setup.api.settings,
            store=setup.api.store,
            bus=setup.api.bus,
            providers=down,
        ) as other:
            response = await other.client(client.headers["authorization"].split()[1]).get(
                f"/v1/calls/{call_id}/recording"
            )
    finally:
        for provider in down.values():
            await provider.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "recording_temporarily_unavailable"
    assert "127.0.0.1:9" not in response.text
    assert "simulator" not in response.text
