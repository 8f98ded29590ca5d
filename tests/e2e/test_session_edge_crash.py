"""Killing the process that relays a live session (SIGKILL: no drain) loses no session
record: after a restart the session ends `client_disconnected`, and exactly one signed
session.ended reaches the endpoint."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from websockets.asyncio.client import connect

from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.support.all_in_one import DEMO_KEY, REPO, all_in_one_env
from tests.support.net import eventually, wait_for_port
from tests.support.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def start_all_in_one(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "run", "all"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_killed_edge_s_session_ends_once_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    env = all_in_one_env(tmp_path, port) | {"SWITCHBOARD_SESSION_DISCONNECT_GRACE_SECONDS": "2"}
    log = tmp_path / "all.log"
    url = f"http://127.0.0.1:{port}"
    receiver = WebhookReceiver()
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    process = start_all_in_one(env, log)
    try:
        await asyncio.to_thread(wait_for_port, port, 30)
        async with (
            serving(receiver.app()) as hooks,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as api,
        ):
            secret = (await api.put("/v1/webhooks", json={"url": f"{hooks}/hook"})).json()["secret"]
            created = (await api.post("/v1/sessions", json={})).json()
            socket = await connect(created["join_url"])
            ready = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            assert ready["type"] == "ready"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            await socket.close()

            process = start_all_in_one(env, log)
            await asyncio.to_thread(wait_for_port, port, 30)

            async def ended() -> dict[str, Any] | None:
                session: dict[str, Any] = (
                    await api.get(f"/v1/sessions/{created['session_id']}")
                ).json()
                return session if session["status"] != "active" else None

            final = await eventually(ended, within=30)
            assert final["reason"] == "client_disconnected"

            async def delivered() -> list[Any]:
                return [r for r in receiver.received if r.payload["type"] == "session.ended"]

            (webhook,) = await eventually(delivered, within=20)
            standardwebhooks.Webhook(secret).verify(webhook.body, webhook.headers)
            await asyncio.sleep(3)  # a second end would have been sent by now
            assert len(await delivered()) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
