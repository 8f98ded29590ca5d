"""Sessions in the production shape: the api, the media edge, the notifier and the
provider simulator as separate processes on the real RabbitMQ and MongoDB. A browser
(a WebSocket client) talks through the media edge and its session.ended reaches the
endpoint through the broker; a media edge killed mid-session (SIGKILL) loses nothing:
after a restart the session ends client_disconnected, announced once. On the ElevenLabs
dialect, the provider's post-call webhook (through webhook-ingest) ends such a session
with the turns the dead edge never stored, also announced once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import standardwebhooks
from websockets.asyncio.client import connect

from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from switchboard_testing.servers import serving
from tests.e2e.conftest import extract_key, pipeline_env
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SERVICES = ("provider-sim", "api", "notifier", "media-edge", "webhook-ingest")


@dataclass
class SessionSystem:
    processes: dict[str, ServiceProcess]
    api: httpx.AsyncClient
    receiver: WebhookReceiver
    secret: str

    def ended_webhooks(self) -> list[Any]:
        return [r for r in self.receiver.received if r.payload["type"] == "session.ended"]


@pytest_asyncio.fixture(scope="module")
async def system(
    mongodb_url: str, rabbitmq_port: int, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SessionSystem]:
    logs = tmp_path_factory.mktemp("sessions-pipeline")
    ports = {name: free_port() for name in SERVICES}
    env = pipeline_env(rabbitmq_port, mongodb_url, f"e2e_{uuid.uuid4().hex[:8]}", ports)
    env |= {
        "SWITCHBOARD_MEDIA_EDGE_URL": f"ws://127.0.0.1:{ports['media-edge']}/media",
        "SWITCHBOARD_SESSION_DISCONNECT_GRACE_SECONDS": "2",
        "SWITCHBOARD_SESSION_SWEEP_INTERVAL_SECONDS": "0.5",
        # Advanced sessions go to "ElevenLabs": the simulator, speaking its dialect.
        "SWITCHBOARD_ELEVENLABS__BASE_URL": f"http://127.0.0.1:{ports['provider-sim']}",
        "SWITCHBOARD_ELEVENLABS__API_KEY": "elevenlabs-key",
        "SWITCHBOARD_ELEVENLABS__CALLBACK_SECRET": "elevenlabs-webhook-secret",
        "SWITCHBOARD_SESSION_TIER_PROVIDERS": json.dumps(
            {"basic": ["simulator"], "advanced": ["elevenlabs"]}
        ),
    }
    processes = {n: ServiceProcess(n, ports[n], env, logs / f"{n}.log") for n in SERVICES}
    admin = processes["api"]

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    cli("tenants", "create", "sessions")
    key = extract_key(cli("keys", "create", "--tenant", "sessions"))
    receiver = WebhookReceiver()
    try:
        for process in processes.values():
            await asyncio.to_thread(process.start)
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            serving(receiver.app()) as hooks,
            httpx.AsyncClient(base_url=admin.url, headers=headers, timeout=10) as api,
        ):
            endpoint = await api.put("/v1/webhooks", json={"url": f"{hooks}/hook"})
            yield SessionSystem(processes, api, receiver, endpoint.json()["secret"])
    finally:
        for process in reversed(processes.values()):
            await asyncio.to_thread(process.stop)


async def test_a_session_through_the_separate_services(system: SessionSystem) -> None:
    created = (await system.api.post("/v1/sessions", json={})).json()
    async with connect(created["join_url"]) as socket:
        ready = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        assert ready["type"] == "ready"
        for _ in range(60):
            await socket.send(b"\x10\x00" * 320)
        user_turn = None
        while user_turn is None:
            frame = await asyncio.wait_for(socket.recv(), timeout=10)
            if isinstance(frame, str) and json.loads(frame).get("role") == "user":
                user_turn = frame
        await socket.send(json.dumps({"type": "end"}))

    async def delivered() -> list[Any]:
        return [
            w
            for w in system.ended_webhooks()
            if w.payload["data"]["session_id"] == created["session_id"]
        ]

    (webhook,) = await eventually(delivered, within=30)
    standardwebhooks.Webhook(system.secret).verify(webhook.body, webhook.headers)
    assert webhook.payload["data"]["reason"] == "manual"


async def test_a_killed_media_edge_loses_no_session(system: SessionSystem, tmp_path: Path) -> None:
    created = (await system.api.post("/v1/sessions", json={})).json()
    socket = await connect(created["join_url"])
    assert json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] == "ready"
    edge = system.processes["media-edge"]
    await asyncio.to_thread(edge.kill)
    await socket.close()
    await asyncio.to_thread(edge.start)

    async def ended() -> dict[str, Any] | None:
        session: dict[str, Any] = (
            await system.api.get(f"/v1/sessions/{created['session_id']}")
        ).json()
        return session if session["status"] != "active" else None

    final = await eventually(ended, within=30)
    assert final["reason"] == "client_disconnected"

    async def delivered() -> list[Any]:
        return [
            w
            for w in system.ended_webhooks()
            if w.payload["data"]["session_id"] == created["session_id"]
        ]

    await eventually(delivered, within=30)
    await asyncio.sleep(2)
    assert len(await delivered()) == 1


async def test_a_killed_edge_s_elevenlabs_session_ends_with_the_provider_s_transcript(
    system: SessionSystem,
) -> None:
    """The edge freezes (SIGSTOP) after storing the user's turn, so the agent's reply
    reaches only its socket buffer, then dies (SIGKILL): the reply is in ElevenLabs'
    post_call_transcription alone, which webhook-ingest puts in the transcript. The
    restarted edge's sweep ends the session after the rejoin grace, announced once, with
    the whole transcript."""
    created = (
        await system.api.post(
            "/v1/sessions", json={"tier": "advanced", "prompt": "[sim:think] Be brief."}
        )
    ).json()
    session_url = f"/v1/sessions/{created['session_id']}"
    socket = await connect(created["join_url"])
    edge = system.processes["media-edge"]
    try:
        assert json.loads(await asyncio.wait_for(socket.recv(), timeout=10))["type"] == "ready"
        for _ in range(55):  # 1.1 s of audio: one user turn
            await socket.send(b"\x10\x00" * 320)

        async def roles() -> list[str]:
            session = (await system.api.get(session_url)).json()
            return [t["role"] for t in session["transcript"]]

        async def user_turn_stored() -> bool:
            return await roles() == ["agent", "user"]

        await eventually(user_turn_stored, within=10, interval=0.02)
        assert edge.process is not None
        edge.process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(1.5)  # the simulator "thinks" 1 s, then replies into the buffer
        assert await roles() == ["agent", "user"]  # the frozen edge stored no reply
        await asyncio.to_thread(edge.kill)
        await socket.close()

        async def reply_filled() -> bool:
            return await roles() == ["agent", "user", "agent"]

        await eventually(reply_filled, within=20)  # from the provider's webhook
    finally:
        if edge.process is not None and edge.process.poll() is None:
            edge.process.send_signal(signal.SIGCONT)
        await asyncio.to_thread(edge.kill)
        await asyncio.to_thread(edge.start)

    async def ended() -> dict[str, Any] | None:
        session: dict[str, Any] = (await system.api.get(session_url)).json()
        return session if session["status"] != "active" else None

    final = await eventually(ended, within=30)
    assert final["reason"] == "client_disconnected"
    assert final["transcript"][2]["text"] == "I heard you. Tell me more."

    async def delivered() -> list[Any]:
        return [
            w
            for w in system.ended_webhooks()
            if w.payload["data"]["session_id"] == created["session_id"]
        ]

    (webhook,) = await eventually(delivered, within=30)
    standardwebhooks.Webhook(system.secret).verify(webhook.body, webhook.headers)
    data = webhook.payload["data"]
    assert [t["role"] for t in data["transcript"]] == ["agent", "user", "agent"]
    body = webhook.body.decode().lower()
    assert not any(word in body for word in ("elevenlabs", "conv_", "simulator"))
    await asyncio.sleep(2)  # a second end would have been sent by now
    assert len(await delivered()) == 1
