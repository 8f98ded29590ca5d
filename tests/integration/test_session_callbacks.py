"""Providers' session webhooks over real HTTP into the webhook-ingest route
`/v1/webhooks/providers/{provider}/sessions`: a transcript the media edge missed is
filled, a session still active is ended and announced once (a real notifier delivering
to a real endpoint), an ended one gets its fuller transcript and no second
session.ended, unknown conversations and repeats are acknowledged and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from switchboard_ingest.routes import router as ingest_router
from switchboard_ingest.session_callbacks import SessionCallbackIngest
from switchboard_notifier.handler import WebhookNotifier
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.providers.convai import ConvaiSessions
from switchboard_shared.calls.provider_signatures import ELEVENLABS
from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import Session, SessionEndReason, TranscriptTurn
from switchboard_shared.domain.webhooks import WebhookEndpoint
from switchboard_shared.http.error_handling import install_error_handlers
from switchboard_shared.ports import Store
from switchboard_shared.runtime.settings import ProviderSettings, Settings
from switchboard_shared.sessions import lifecycle
from switchboard_shared.sessions.timeouts import SessionTimeoutSweep
from switchboard_shared.webhooks.signing import generate_secret
from switchboard_testing.servers import serving
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver
from tests.support.stores import open_store

pytestmark = pytest.mark.timeout(60)

WEBHOOK_SECRET = "wsec_ingest_test"
ROUTE = "/v1/webhooks/providers/elevenlabs/sessions"


@dataclass
class World:
    store: Store
    bus: InProcessBus
    receiver: WebhookReceiver
    ingest: httpx.AsyncClient

    async def live_session(
        self, conversation_id: str, turns: list[str], relayed_for: float = -1.0
    ) -> Session:
        """An active session the edge opened on `conversation_id` and stored `turns` of,
        whose relay keeps it alive `relayed_for` seconds more (negative: its edge died
        and the rejoin grace is over)."""
        values: dict[str, Any] = {
            "tenant_id": "tenant-a",
            "api_key_id": f"key-{conversation_id}",
            "tier": Tier.BASIC,
            "prompt": "Be brief.",
            "language": "en",
            "max_duration": 300,
            "started_at": utcnow() - timedelta(seconds=20),
        }
        session, _ = await self.store.insert_session(Session.model_validate(values), 3600)
        await self.store.set_session_provider(session.session_id, "elevenlabs", conversation_id)
        said = [TranscriptTurn(role=_role(i), text=text) for i, text in enumerate(turns)]
        await self.store.add_transcript_turns(session.session_id, said)
        alive_until = utcnow() + timedelta(seconds=relayed_for)
        await self.store.touch_session(session.session_id, alive_until)
        return session

    async def post(self, payload: Any, secret: str = WEBHOOK_SECRET) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **ELEVENLABS.sign(secret, body)}
        return await self.ingest.post(ROUTE, content=body, headers=headers)

    async def ended_webhooks(self, session_id: str) -> list[dict[str, Any]]:
        return [
            r.payload
            for r in self.receiver.received
            if r.payload["type"] == "session.ended"
            and r.payload["data"]["session_id"] == session_id
        ]


def _role(index: int) -> str:
    return "agent" if index % 2 == 0 else "user"


def transcription(
    conversation_id: str, turns: list[str], status: str = "done", started: int | None = None
) -> dict[str, Any]:
    start = started if started is not None else int(time.time()) - 20
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "agent_1",
            "conversation_id": conversation_id,
            "status": status,
            "transcript": [
                {"role": _role(i), "message": text, "time_in_call_secs": 2 * i}
                for i, text in enumerate(turns)
            ],
            "metadata": {"start_time_unix_secs": start, "call_duration_secs": 15},
        },
    }


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(webhook_allow_http=True, webhook_allow_private_networks=True)
    receiver = WebhookReceiver()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store("sqlite", tmp_path=tmp_path))
        hooks = await stack.enter_async_context(serving(receiver.app()))
        bus = InProcessBus()
        await bus.start()
        stack.push_async_callback(bus.close)
        notifier = WebhookNotifier(store, bus, settings)
        stack.push_async_callback(notifier.close)
        await bus.subscribe(notifier.subscription())
        await store.put_webhook_endpoint(
            WebhookEndpoint(tenant_id="tenant-a", url=f"{hooks}/hook", secret=generate_secret())
        )
        provider = ConvaiSessions(
            "elevenlabs",
            ProviderSettings(base_url="http://127.0.0.1:9", callback_secret=WEBHOOK_SECRET),
        )
        stack.push_async_callback(provider.close)
        app = FastAPI()
        install_error_handlers(app)
        app.state.session_ingest = SessionCallbackIngest(store, bus, {"elevenlabs": provider})
        app.include_router(ingest_router)
        base = await stack.enter_async_context(serving(app))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=10))
        yield World(store, bus, receiver, client)


async def test_an_unrelayed_session_is_filled_then_ended_and_announced_once(
    world: World,
) -> None:
    session = await world.live_session("conv_live", ["Hello", "Hi"])
    started = int(time.time()) - 20
    payload = transcription("conv_live", ["Hello", "Hi", "How can I help?"], started=started)
    response = await world.post(payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "applied"}

    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert (stored.status.value, stored.reason) == ("ended", SessionEndReason.CLIENT_DISCONNECTED)
    assert [t.text for t in stored.transcript] == ["Hello", "Hi", "How can I help?"]
    # The filled turn is placed at the provider's start plus its offset.
    assert stored.transcript[2].at == datetime.fromtimestamp(started + 4, UTC)
    # Ended when the provider's conversation did (its start + call_duration_secs).
    assert stored.ended_at == datetime.fromtimestamp(started + 15, UTC)

    (announced,) = await eventually(lambda: world.ended_webhooks(session.session_id), within=10)
    assert announced["data"]["reason"] == "client_disconnected"
    assert [t["text"] for t in announced["data"]["transcript"]] == [
        "Hello",
        "Hi",
        "How can I help?",
    ]

    # The provider retries: acknowledged, nothing changes, no second session.ended.
    again = await world.post(payload)
    assert again.json() == {"status": "duplicate"}
    await asyncio.sleep(1)
    assert len(await world.ended_webhooks(session.session_id)) == 1
    after = await world.store.get_session(session.session_id)
    assert after is not None
    assert (after.transcript, after.reason, after.ended_at) == (
        stored.transcript,
        stored.reason,
        stored.ended_at,
    )


async def test_within_the_rejoin_grace_the_transcript_is_filled_and_the_sweep_ends_it(
    world: World,
) -> None:
    session = await world.live_session("conv_grace", ["Hello", "Hi"], relayed_for=1.0)
    response = await world.post(transcription("conv_grace", ["Hello", "Hi", "Go on"]))
    assert response.json() == {"status": "applied"}
    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert stored.is_active  # the browser may still rejoin, on a new conversation
    assert [t.text for t in stored.transcript] == ["Hello", "Hi", "Go on"]

    await asyncio.sleep(1.2)  # the grace runs out: the sweep ends it, once
    assert await SessionTimeoutSweep(world.store, world.bus).run_once() == 1
    (announced,) = await eventually(lambda: world.ended_webhooks(session.session_id), within=10)
    assert announced["data"]["reason"] == "client_disconnected"
    assert [t["text"] for t in announced["data"]["transcript"]] == ["Hello", "Hi", "Go on"]
    again = await world.post(transcription("conv_grace", ["Hello", "Hi", "Go on"]))
    assert again.json() == {"status": "duplicate"}
    await asyncio.sleep(1)
    assert len(await world.ended_webhooks(session.session_id)) == 1


async def test_an_ended_session_gets_the_fuller_transcript_and_no_second_end(
    world: World,
) -> None:
    session = await world.live_session("conv_ended", ["Hello"])
    await lifecycle.end_session(world.store, world.bus, session.session_id, SessionEndReason.MANUAL)
    (first,) = await eventually(lambda: world.ended_webhooks(session.session_id), within=10)
    assert len(first["data"]["transcript"]) == 1

    response = await world.post(transcription("conv_ended", ["Hello", "Hi", "Bye"]))
    assert response.json() == {"status": "applied"}
    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert stored.reason is SessionEndReason.MANUAL  # the first end stands
    assert [t.text for t in stored.transcript] == ["Hello", "Hi", "Bye"]
    await asyncio.sleep(1)
    assert len(await world.ended_webhooks(session.session_id)) == 1


async def test_a_failed_conversation_ends_the_session_with_provider_error(world: World) -> None:
    session = await world.live_session("conv_failed", ["Hello"])
    response = await world.post(transcription("conv_failed", ["Hello"], status="failed"))
    assert response.json() == {"status": "applied"}
    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert stored.reason is SessionEndReason.PROVIDER_ERROR
    await eventually(lambda: world.ended_webhooks(session.session_id), within=10)


async def test_an_unknown_conversation_or_event_type_is_acknowledged_and_ignored(
    world: World,
) -> None:
    response = await world.post(transcription("conv_nobody", ["Hello"]))
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    audio = {"type": "post_call_audio", "data": {"conversation_id": "conv_x", "full_audio": ""}}
    response = await world.post(audio)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


async def test_bad_signatures_and_bodies_get_the_error_shape(world: World) -> None:
    session = await world.live_session("conv_guarded", ["Hello"])
    payload = transcription("conv_guarded", ["Hello", "Hi"])
    assert_error(await world.post(payload, secret="wrong"), 401, "invalid_signature")
    unsigned = await world.ingest.post(ROUTE, json=payload)
    assert_error(unsigned, 401, "invalid_signature")
    body = json.dumps(payload).encode()
    stale = ELEVENLABS.sign(WEBHOOK_SECRET, body, int(time.time()) - 31 * 60)
    assert_error(
        await world.ingest.post(ROUTE, content=body, headers=stale), 401, "invalid_signature"
    )
    assert_error(await world.post(b"{not json"), 400, "malformed_callback")
    other = "/v1/webhooks/providers/vocode/sessions"
    assert_error(await world.ingest.post(other, content=body), 404, "unknown_provider")
    # None of it touched the session.
    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert stored.is_active
    assert len(stored.transcript) == 1
