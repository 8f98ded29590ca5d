"""Sessions end by themselves at max_duration (from the store, so a restart changes
nothing), and every end reaches the tenant's endpoint once as a signed `session.ended`
(Standard Webhooks headers and X-Signature), also when its event was lost."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks

from switchboard_notifier.handler import WebhookNotifier
from switchboard_notifier.scheduler import NotifySweep
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import (
    Session,
    SessionEndReason,
    SessionStatus,
    TranscriptTurn,
)
from switchboard_shared.domain.webhooks import WebhookEndpoint
from switchboard_shared.ports import Store
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.sessions import lifecycle
from switchboard_shared.sessions.timeouts import SessionTimeoutSweep
from switchboard_shared.webhooks.signing import body_signature, generate_secret
from switchboard_testing.servers import serving
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver
from tests.support.stores import open_store

pytestmark = pytest.mark.timeout(60)

SECRET = generate_secret()


@dataclass
class World:
    store: Store
    bus: InProcessBus
    notifier: WebhookNotifier
    receiver: WebhookReceiver
    url: str

    async def session(self, **fields: object) -> Session:
        values: dict[str, object] = {
            "tenant_id": "tenant-a",
            "api_key_id": f"key-{utcnow().timestamp()}",
            "tier": Tier.BASIC,
            "prompt": "Be brief.",
            "language": "en",
            "max_duration": 300,
            **fields,
        }
        stored, _ = await self.store.insert_session(Session.model_validate(values), 3600)
        return stored

    async def one_ended_webhook(self) -> bool:
        return len(self.ended_webhooks()) == 1

    def ended_webhooks(self) -> list[dict[str, object]]:
        return [r.payload for r in self.receiver.received if r.payload["type"] == "session.ended"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        webhook_allow_http=True,
        webhook_allow_private_networks=True,
        notify_sweep_after_seconds=0.001,
    )
    receiver = WebhookReceiver()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store("sqlite", tmp_path=tmp_path))
        base = await stack.enter_async_context(serving(receiver.app()))
        bus = InProcessBus()
        await bus.start()
        stack.push_async_callback(bus.close)
        notifier = WebhookNotifier(store, bus, settings)
        stack.push_async_callback(notifier.close)
        await bus.subscribe(notifier.subscription())
        url = f"{base}/hook"
        await store.put_webhook_endpoint(
            WebhookEndpoint(tenant_id="tenant-a", url=url, secret=SECRET)
        )
        yield World(store, bus, notifier, receiver, url)


async def test_the_sweep_ends_expired_sessions_with_timeout_once(world: World) -> None:
    now = utcnow()
    expired = await world.session(max_duration=10, started_at=now - timedelta(seconds=12))
    running = await world.session(max_duration=60, started_at=now - timedelta(seconds=12))
    # A new sweep object: what a restarted process has; the store is all it needs.
    assert await SessionTimeoutSweep(world.store, world.bus).run_once() == 1
    assert await SessionTimeoutSweep(world.store, world.bus).run_once() == 0
    ended = await world.store.get_session(expired.session_id)
    assert ended is not None
    assert (ended.status, ended.reason, ended.duration) == (
        SessionStatus.TIMEOUT,
        SessionEndReason.TIMEOUT,
        10,
    )
    assert ended.ended_at == expired.expires_at
    still = await world.store.get_session(running.session_id)
    assert still is not None
    assert still.is_active

    await eventually(world.one_ended_webhook, within=10)
    assert world.ended_webhooks()[0]["data"]["reason"] == "timeout"  # type: ignore[index]


async def test_session_ended_is_signed_and_carries_the_session(world: World) -> None:
    session = await world.session(
        agent="altynai", variables={"name": "Aida"}, metadata={"order": "A-1"}
    )
    await world.store.add_transcript_turns(
        session.session_id,
        [TranscriptTurn(role="agent", text="Hello!"), TranscriptTurn(role="user", text="Hi")],
    )
    ended_at = session.started_at + timedelta(seconds=47)
    await lifecycle.end_session(
        world.store, world.bus, session.session_id, SessionEndReason.MANUAL, ended_at
    )
    await eventually(world.one_ended_webhook, within=10)
    (received,) = [r for r in world.receiver.received if r.payload["type"] == "session.ended"]
    standardwebhooks.Webhook(SECRET).verify(received.body, received.headers)
    assert received.headers["x-signature"] == body_signature(SECRET, received.body)
    payload = received.payload
    assert set(payload) == {"type", "id", "created_at", "data"}
    assert payload["id"] == received.headers["webhook-id"]
    data = payload["data"]
    assert data == {
        "session_id": session.session_id,
        "reason": "manual",
        "duration": {"total_seconds": 47, "display": "0m 47s"},
        "transcript": data["transcript"],
        "tier": "basic",
        "agent": "altynai",
        "variables": {"name": "Aida"},
        "metadata": {"order": "A-1"},
        "ended_at": data["ended_at"],
    }
    assert [(t["role"], t["text"]) for t in data["transcript"]] == [
        ("agent", "Hello!"),
        ("user", "Hi"),
    ]
    stored = await world.store.get_session(session.session_id)
    assert stored is not None
    assert not stored.notify_pending


async def test_an_end_whose_event_was_lost_is_delivered_by_the_sweep_once(
    world: World,
) -> None:
    session = await world.session()
    # Ended in the store, the process died before publishing.
    await world.store.end_session(session.session_id, SessionEndReason.CLIENT_DISCONNECTED)
    sweep = NotifySweep(world.store, world.notifier, Settings(notify_sweep_after_seconds=0.001))
    assert await sweep.run_once() == 1
    assert await sweep.run_once() == 0
    # A late copy of the event (the broker kept it after all) is the same event.
    ended = await world.store.get_session(session.session_id)
    assert ended is not None
    await lifecycle.publish_ended(world.bus, ended)
    await eventually(world.one_ended_webhook, within=10)
    assert len(world.receiver.by_webhook_id()) == 1
    assert world.ended_webhooks()[0]["data"]["reason"] == "client_disconnected"  # type: ignore[index]


async def test_an_endpoint_that_filters_session_ended_out_gets_nothing(world: World) -> None:
    await world.store.put_webhook_endpoint(
        WebhookEndpoint(
            tenant_id="tenant-a", url=world.url, secret=SECRET, events=["call.completed"]
        )
    )
    session = await world.session()
    await lifecycle.end_session(world.store, world.bus, session.session_id, SessionEndReason.MANUAL)

    async def notified() -> bool:
        stored = await world.store.get_session(session.session_id)
        return stored is not None and not stored.notify_pending

    await eventually(notified, within=10)
    assert world.ended_webhooks() == []
