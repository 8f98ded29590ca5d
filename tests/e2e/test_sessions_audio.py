"""Browser voice sessions through `switchboard run all` (what `make run` starts), with a
real WebSocket client as the browser: the join, audio both ways, transcript turns, the
end (and its signed webhook), refused tokens, a refusing provider and max_duration."""

from __future__ import annotations

import asyncio
import json
import math
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.support.all_in_one import AllInOne, running_all_in_one
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FRAME_BYTES = 640  # 20 ms of 16 kHz mono PCM16, as the page sends


def speech(seconds: float) -> Iterator[bytes]:
    """A 200 Hz hum in 20 ms frames: something a microphone could have picked up."""
    total = int(16_000 * seconds)
    samples = [int(6000 * math.sin(2 * math.pi * 200 * i / 16_000)) for i in range(total)]
    pcm = struct.pack(f"<{total}h", *samples)
    for offset in range(0, len(pcm), FRAME_BYTES):
        yield pcm[offset : offset + FRAME_BYTES]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    fast = {
        "SWITCHBOARD_SESSION_DISCONNECT_GRACE_SECONDS": "2",
        "SWITCHBOARD_SESSION_SWEEP_INTERVAL_SECONDS": "0.5",
        # An ElevenLabs that cannot be reached (nothing listens there): agents' session
        # routes to it fail over to the simulator.
        "SWITCHBOARD_ELEVENLABS__BASE_URL": f"http://127.0.0.1:{free_port()}",
        "SWITCHBOARD_ELEVENLABS__API_KEY": "el-key",
    }
    with running_all_in_one(Path(tmp_path_factory.mktemp("sessions")), fast) as running:
        yield running


@pytest.fixture
async def api(system: AllInOne) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {system.api_key}"}
    async with httpx.AsyncClient(base_url=system.url, headers=headers, timeout=10) as client:
        yield client


async def start(api: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await api.post("/v1/sessions", json=body or {})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def next_json(socket: ClientConnection, kind: str) -> dict[str, Any]:
    """The next text frame of type `kind` (audio and other frames in between skipped)."""
    while True:
        frame = await asyncio.wait_for(socket.recv(), timeout=10)
        if isinstance(frame, str):
            message: dict[str, Any] = json.loads(frame)
            if message["type"] == kind:
                return message


async def closed_code(url: str) -> int:
    """The close code of a join at `url`; fails if any frame (audio, ready) comes first."""
    async with connect(url) as socket:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(socket.recv(), timeout=10)
    assert socket.close_code is not None
    return socket.close_code


async def test_audio_flows_both_ways_and_the_end_is_signed_and_delivered(
    system: AllInOne, api: httpx.AsyncClient
) -> None:
    receiver = WebhookReceiver()
    async with serving(receiver.app()) as base:
        endpoint = await api.put("/v1/webhooks", json={"url": f"{base}/hook"})
        assert endpoint.status_code in (200, 201), endpoint.text
        secret = (
            endpoint.json().get("secret")
            or (await api.post("/v1/webhooks/rotate-secret")).json()["secret"]
        )
        created = await start(api)
        assert "sim" not in created["join_url"].split("?")[0]
        async with connect(created["join_url"]) as socket:
            ready = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            assert ready["type"] == "ready"
            assert (ready["sample_rate"], ready["encoding"]) == (16_000, "pcm_s16le")
            greeting = await next_json(socket, "transcript")
            assert greeting["role"] == "agent"
            received_audio = 0
            for frame in speech(1.2):
                await socket.send(frame)
            user_turn = None
            while user_turn is None:
                frame = await asyncio.wait_for(socket.recv(), timeout=10)
                if isinstance(frame, bytes):
                    received_audio += len(frame)
                elif json.loads(frame).get("role") == "user":
                    user_turn = json.loads(frame)
            reply = await next_json(socket, "transcript")
            assert reply["role"] == "agent"
            assert received_audio > 16_000  # half a second of greeting at least
            live = (await api.get(f"/v1/sessions/{created['session_id']}")).json()
            assert live["status"] == "active"
            assert [t["role"] for t in live["transcript"]][:2] == ["agent", "user"]
            await socket.send(json.dumps({"type": "end"}))
            ended = await next_json(socket, "ended")
            assert ended["reason"] == "manual"
        final = (await api.get(f"/v1/sessions/{created['session_id']}")).json()
        assert (final["status"], final["reason"]) == ("ended", "manual")
        assert final["ended_at"] is not None

        async def delivered() -> list[Any]:
            return [r for r in receiver.received if r.payload["type"] == "session.ended"]

        (webhook,) = await eventually(delivered, within=20)
        standardwebhooks.Webhook(secret).verify(webhook.body, webhook.headers)
        data = webhook.payload["data"]
        assert (data["session_id"], data["reason"]) == (created["session_id"], "manual")
        assert len(data["transcript"]) >= 3
        body = webhook.body.decode().lower()
        assert not any(word in body for word in ("simulator", "elevenlabs", "conv_", "convai"))
        await api.delete("/v1/webhooks")


SESSION_AGENTS = """\
agents:
  - key: browser-failover
    name: Browser failover
    routes:
      - {provider: elevenlabs, provider_agent_id: el-agent-1}
      - {provider: simulator, provider_agent_id: sim-session-agent}
  - key: browser-tiers
    name: Browser tiers
    routes:
      - {provider: elevenlabs, provider_agent_id: el-agent-2, tier: advanced}
      - {provider: simulator, provider_agent_id: sim-session-agent, tier: basic}
"""


async def provider_failures(system: AllInOne, session_id: str) -> list[str]:
    """The edge's log lines about a provider session that failed, for this session."""
    return [
        line
        for line in system.logs().splitlines()
        if session_id in line and "session failed" in line
    ]


async def test_a_sessions_agent_routes_pick_by_tier_and_fail_over(
    system: AllInOne, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text(SESSION_AGENTS)
    loaded = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "switchboard.cli", "agents", "load", str(agents)],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr

    # The agent's first route is down: the session opens on its second.
    created = await start(api, {"agent": "browser-failover"})
    async with connect(created["join_url"]) as socket:
        assert (await next_json(socket, "ready"))["sample_rate"] == 16_000
        assert (await next_json(socket, "transcript"))["role"] == "agent"
    failures = await eventually(lambda: provider_failures(system, created["session_id"]))
    assert "elevenlabs" in failures[0]
    await api.delete(f"/v1/sessions/{created['session_id']}")

    # A basic session never tries the route that serves only advanced ones...
    basic = await start(api, {"agent": "browser-tiers", "tier": "basic"})
    async with connect(basic["join_url"]) as socket:
        await next_json(socket, "ready")
    await api.delete(f"/v1/sessions/{basic['session_id']}")
    assert await provider_failures(system, basic["session_id"]) == []
    # ...which an advanced session tries first.
    advanced = await start(api, {"agent": "browser-tiers", "tier": "advanced"})
    async with connect(advanced["join_url"]) as socket:
        await next_json(socket, "ready")
    await api.delete(f"/v1/sessions/{advanced['session_id']}")
    assert "elevenlabs" in (await provider_failures(system, advanced["session_id"]))[0]


async def test_a_used_forged_or_missing_token_is_refused_before_any_audio(
    api: httpx.AsyncClient,
) -> None:
    created = await start(api)
    url = created["join_url"]
    async with connect(url) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] == "ready"
        assert await closed_code(url) == 1008  # the same token again, from a second tab
    base, _, token = url.partition("?token=")
    assert await closed_code(f"{base}?token={token[:-4]}AAAA") == 1008
    assert await closed_code(base) == 1008
    other = base.rsplit("/", 1)[0] + "/sess_00000000000000000000000000000000"
    assert await closed_code(f"{other}?token={token}") == 1008
    await api.delete(f"/v1/sessions/{created['session_id']}")


async def test_delete_closes_the_live_socket(api: httpx.AsyncClient) -> None:
    created = await start(api)
    async with connect(created["join_url"]) as socket:
        await next_json(socket, "ready")
        await api.delete(f"/v1/sessions/{created['session_id']}")
        ended = await next_json(socket, "ended")
        assert ended["reason"] == "manual"


async def test_a_provider_that_refuses_ends_the_session_with_provider_error(
    api: httpx.AsyncClient,
) -> None:
    created = await start(api, {"prompt": "[sim:refuse] Be brief."})
    async with connect(created["join_url"]) as socket:
        ended = await next_json(socket, "ended")
        assert ended["reason"] == "provider_error"
    assert socket.close_code == 1011
    final = (await api.get(f"/v1/sessions/{created['session_id']}")).json()
    assert (final["status"], final["reason"]) == ("ended", "provider_error")


async def test_a_provider_that_drops_the_session_ends_it_with_provider_error(
    api: httpx.AsyncClient,
) -> None:
    created = await start(api, {"prompt": "[sim:drop] Be brief."})
    async with connect(created["join_url"]) as socket:
        ended = await next_json(socket, "ended")
    assert ended["reason"] == "provider_error"


async def test_an_oversized_frame_closes_the_socket(api: httpx.AsyncClient) -> None:
    created = await start(api)
    async with connect(created["join_url"], max_size=None) as socket:
        await next_json(socket, "ready")
        await socket.send(b"\0" * (64 * 1024 + 2))
        await next_json(socket, "ended")
    assert socket.close_code == 1009


async def test_the_socket_ends_at_max_duration(api: httpx.AsyncClient) -> None:
    created = await start(api, {"max_duration": 10})
    async with connect(created["join_url"]) as socket:
        await next_json(socket, "ready")
        ended = await asyncio.wait_for(next_json_any(socket, "ended"), timeout=20)
    assert ended["reason"] == "timeout"
    final = (await api.get(f"/v1/sessions/{created['session_id']}")).json()
    assert (final["status"], final["elapsed"]["total_seconds"]) == ("timeout", 10)


async def test_a_browser_that_leaves_may_rejoin_within_the_grace(
    api: httpx.AsyncClient,
) -> None:
    retry = {"Idempotency-Key": f"join-{uuid.uuid4().hex}"}
    created = (await api.post("/v1/sessions", json={}, headers=retry)).json()
    async with connect(created["join_url"]) as socket:
        await next_json(socket, "ready")
    # The page reloads: the same create again gives the same session and a new join_url.
    again = await api.post("/v1/sessions", json={}, headers=retry)
    assert again.json()["session_id"] == created["session_id"]
    async with connect(again.json()["join_url"]) as socket:
        await next_json(socket, "ready")
        await asyncio.sleep(3)  # longer than the grace: the relay keeps it alive
        status = (await api.get(f"/v1/sessions/{created['session_id']}")).json()["status"]
        assert status == "active"

    async def ended() -> dict[str, Any] | None:
        session: dict[str, Any] = (await api.get(f"/v1/sessions/{created['session_id']}")).json()
        return session if session["status"] != "active" else None

    final = await eventually(ended, within=15)
    assert final["reason"] == "client_disconnected"


async def next_json_any(socket: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = await socket.recv()
        if isinstance(frame, str) and json.loads(frame)["type"] == kind:
            result: dict[str, Any] = json.loads(frame)
            return result
