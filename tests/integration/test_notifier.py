"""The notifier delivers signed webhooks to real HTTP receivers on loopback.

Receivers are one Starlette app served by uvicorn; each test gets paths of its own, and
each path answers from a script (500, 500, 200...). The SSRF guard is relaxed by the
operator settings (http and private networks allowed), and the retry schedule is cut
to fractions of a second. Each world runs what a notifier process runs: the consumer,
the retry scheduler (retries come from the store) and the completion sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client import REGISTRY
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard_notifier.handler import HANDLER_RETRY_DELAYS, QUEUE, WebhookNotifier
from switchboard_notifier.scheduler import DeliveryScheduler, NotifySweep
from switchboard_notifier.service import draining
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.bus.rabbitmq import RabbitBus, retry_queue
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.calls.outbox import event_for
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.tenants import Tenant
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import Bus, MessageContext, Store
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.webhooks.sender import AttemptResult, WebhookSender
from switchboard_shared.webhooks.signing import generate_secret
from switchboard_shared.webhooks.url_guard import resolve
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.support.broker import queue_depths
from tests.support.net import eventually
from tests.support.stores import open_store

pytestmark = pytest.mark.timeout(60)

PROVIDER_CALL_ID = "vx-call-7f3a9"


# --- receivers ------------------------------------------------------------------------


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    at: float


Script = Callable[[int], Awaitable[Response]]


def answers(*statuses: int, headers: dict[str, str] | None = None, body: str = "ok") -> Script:
    """Answer the n-th request with statuses[n-1] (the last one from then on)."""

    async def script(n: int) -> Response:
        status = statuses[min(n, len(statuses)) - 1]
        return Response(body, status_code=status, headers=headers if status != 200 else None)

    return script


@dataclass
class Receivers:
    base_url: str = ""
    scripts: dict[str, Script] = field(default_factory=dict)
    hits: dict[str, list[Hit]] = field(default_factory=dict)

    def url(self, script: Script) -> str:
        """A fresh path answering with `script`; returns its full URL."""
        path = f"/hook/{uuid.uuid4().hex}"
        self.scripts[path] = script
        self.hits[path] = []
        return self.base_url + path

    def got(self, url: str) -> list[Hit]:
        return self.hits.get(url.removeprefix(self.base_url), [])

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        hits = self.hits.setdefault(path, [])
        hits.append(Hit(dict(request.headers), await request.body(), time.monotonic()))
        script = self.scripts.get(path)
        if script is None:
            return Response("no such hook", status_code=404)
        return await script(len(hits))


@pytest.fixture(scope="module")
async def receivers() -> AsyncIterator[Receivers]:
    made = Receivers()
    app = Starlette(routes=[Route("/{path:path}", made.handle, methods=["POST"])])
    async with serving(app) as base_url:
        made.base_url = base_url
        yield made


# --- the notifier under test ----------------------------------------------------------


def notifier_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allow_http": True,
        "webhook_allow_private_networks": True,
        "webhook_retry_delays": [0.1, 0.1],
        "webhook_timeout_seconds": 2.0,
        "webhook_secret_rotation_hours": 1,
        "delivery_poll_interval_seconds": 0.05,
        "delivery_lease_seconds": 5.0,
    }
    return Settings(**{**values, **overrides})


CONTEXT = MessageContext(attempt=1, max_attempts=1 + len(HANDLER_RETRY_DELAYS), redelivered=False)


@dataclass
class World:
    store: Store
    bus: Bus
    notifier: WebhookNotifier
    tenant: Tenant
    settings: Settings
    workers: list[PeriodicTask] = field(default_factory=list)

    def start_workers(self) -> None:
        """The notifier process's periodic workers: the retry scheduler and the sweep."""
        scheduler = DeliveryScheduler(self.store, self.notifier, self.settings)
        sweep = NotifySweep(self.store, self.notifier, self.settings)
        interval = self.settings.delivery_poll_interval_seconds
        self.workers = [
            PeriodicTask("webhook-retries", scheduler.run_once, interval),
            PeriodicTask("notify-sweep", sweep.run_once, interval),
        ]
        for worker in self.workers:
            worker.start()

    async def stop_workers(self) -> None:
        for worker in self.workers:
            await worker.stop()

    async def endpoint(
        self, url: str | None, events: list[str] | None = None, **extra: Any
    ) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(
            tenant_id=self.tenant.tenant_id,
            url=url,
            events=events or ["call.completed"],
            secret=generate_secret(),
            **extra,
        )
        await self.store.put_webhook_endpoint(endpoint)
        return endpoint

    async def call(
        self,
        status: CallStatus = CallStatus.COMPLETED,
        webhook_url: str | None = None,
        **fields: Any,
    ) -> Call:
        call = Call(
            tenant_id=self.tenant.tenant_id,
            agent="altynai",
            phone="+996700000000",
            status=status,
            webhook_url=webhook_url,
            transcript="agent: Hello\nuser: Hi",
            duration=42,
            ended_reason="hangup",
            metadata={"order": 7},
            provider="voxpria",
            provider_call_id=PROVIDER_CALL_ID,
            sequence=5,
            **fields,
        )
        stored, _ = await self.store.insert_call(call, idempotency_ttl_seconds=0)
        return stored

    async def deliveries(self, **filters: Any) -> list[Delivery]:
        page = await self.store.list_deliveries(
            self.tenant.tenant_id, DeliveryFilter(**filters), 100, None
        )
        return page.deliveries

    async def settled(self, event_id: str, count: int = 1) -> list[Delivery]:
        """Waits until `count` deliveries of `event_id` are no longer pending."""

        async def probe() -> list[Delivery]:
            mine = [d for d in await self.deliveries() if d.event_id == event_id]
            done = len(mine) == count and all(d.status != DeliveryStatus.PENDING for d in mine)
            return mine if done else []

        return await eventually(probe)


@pytest.fixture
async def world_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    made: list[tuple[World, Any]] = []

    async def make(bus: Bus | None = None, *, workers: bool = True, **overrides: Any) -> World:
        settings = notifier_settings(**overrides)
        store_cm = open_store("sqlite", tmp_path=tmp_path)
        store = await store_cm.__aenter__()
        bus = bus or InProcessBus()
        await bus.start()
        notifier = WebhookNotifier(store, bus, settings)
        await bus.subscribe(notifier.subscription())
        tenant = await store.create_tenant(Tenant(name=f"t-{uuid.uuid4().hex[:8]}"))
        world = World(store, bus, notifier, tenant, settings)
        if workers:
            world.start_workers()
        made.append((world, store_cm))
        return world

    yield make
    for world, store_cm in made:
        await world.stop_workers()
        await world.bus.close()
        await world.notifier.close()
        await store_cm.__aexit__(None, None, None)


@pytest.fixture
async def world(world_factory: Callable[..., Awaitable[World]]) -> World:
    return await world_factory()


def assert_nothing_provider_related(hit: Hit) -> None:
    text = (hit.body.decode() + json.dumps(hit.headers)).lower()
    for word in ("provider", "voxpria", "vocode", PROVIDER_CALL_ID.lower()):
        assert word not in text


def x_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- signing and payload --------------------------------------------------------------


async def test_webhook_is_signed_and_carries_the_public_call(
    world: World, receivers: Receivers
) -> None:
    url = receivers.url(answers(200))
    endpoint = await world.endpoint(url)
    call = await world.call()
    event = event_for(call)
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    [hit] = receivers.got(url)
    payload = Webhook(endpoint.secret).verify(hit.body, hit.headers)
    assert hit.headers["x-signature"] == x_signature(endpoint.secret, hit.body)
    assert hit.headers["webhook-id"] == event.id
    assert hit.headers["content-type"] == "application/json"
    assert set(payload) == {"type", "id", "created_at", "sequence", "data"}
    assert payload["type"] == "call.completed"
    assert payload["id"] == event.id
    assert payload["sequence"] == call.sequence
    assert payload["data"] == call.public_view().model_dump(mode="json")
    assert_nothing_provider_related(hit)
    # The log keeps the exact body, for byte-identical replays.
    assert delivery.payload.encode() == hit.body
    [attempt] = delivery.attempts
    assert attempt.status_code == 200
    assert attempt.latency_ms is not None
    assert attempt.response_body == "ok"


async def test_rotation_signs_with_both_secrets(world: World, receivers: Receivers) -> None:
    url = receivers.url(answers(200))
    old = generate_secret()
    endpoint = await world.endpoint(
        url, previous_secret=old, previous_secret_expires_at=utcnow() + timedelta(hours=1)
    )
    event = event_for(await world.call())
    await world.bus.publish(event)

    await world.settled(event.id)
    [hit] = receivers.got(url)
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint.secret).verify(hit.body, hit.headers)
    Webhook(old).verify(hit.body, hit.headers)
    assert hit.headers["x-signature"] == x_signature(endpoint.secret, hit.body)


async def test_expired_previous_secret_no_longer_signs(world: World, receivers: Receivers) -> None:
    url = receivers.url(answers(200))
    await world.endpoint(
        url,
        previous_secret=generate_secret(),
        previous_secret_expires_at=utcnow() - timedelta(seconds=1),
    )
    event = event_for(await world.call())
    await world.bus.publish(event)
    await world.settled(event.id)
    [hit] = receivers.got(url)
    assert " " not in hit.headers["webhook-signature"]


# --- targets ---------------------------------------------------------------------------


async def test_per_call_url_without_an_endpoint_gets_a_generated_secret(
    world: World, receivers: Receivers
) -> None:
    url = receivers.url(answers(200))
    event = event_for(await world.call(webhook_url=url))
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    endpoint = await world.store.get_webhook_endpoint(world.tenant.tenant_id)
    assert endpoint is not None
    assert endpoint.url is None
    assert endpoint.secret.startswith("whsec_")
    [hit] = receivers.got(url)
    Webhook(endpoint.secret).verify(hit.body, hit.headers)
    assert_nothing_provider_related(hit)


async def test_two_targets_retry_only_the_pending_one(world: World, receivers: Receivers) -> None:
    tenant_url = receivers.url(answers(200))
    call_url = receivers.url(answers(503, 200))
    await world.endpoint(tenant_url)
    event = event_for(await world.call(webhook_url=call_url))
    await world.bus.publish(event)

    deliveries = await world.settled(event.id, count=2)
    assert {d.url: d.status for d in deliveries} == {
        tenant_url: DeliveryStatus.DELIVERED,
        call_url: DeliveryStatus.DELIVERED,
    }
    assert len(receivers.got(tenant_url)) == 1
    assert len(receivers.got(call_url)) == 2


async def test_unsubscribed_and_internal_events_are_not_sent(
    world: World, receivers: Receivers
) -> None:
    url = receivers.url(answers(200))
    await world.endpoint(url, events=["call.completed"])
    ringing = event_for(await world.call(status=CallStatus.RINGING))
    queued = event_for(await world.call(status=CallStatus.QUEUED))
    assert queued.type is EventType.CALL_REQUESTED
    context = MessageContext(attempt=1, max_attempts=3, redelivered=False)
    for event in (ringing, queued):
        await world.notifier.handle(event, context)
    cancel = Event(
        type=EventType.CALL_CANCEL_REQUESTED, tenant_id=world.tenant.tenant_id, call_id="c"
    )
    await world.notifier.handle(cancel, context)
    assert await world.deliveries() == []
    assert receivers.got(url) == []


async def test_subscribed_status_events_are_sent(world: World, receivers: Receivers) -> None:
    url = receivers.url(answers(200))
    await world.endpoint(url, events=["call.ringing", "call.completed"])
    event = event_for(await world.call(status=CallStatus.RINGING))
    await world.bus.publish(event)
    [delivery] = await world.settled(event.id)
    assert delivery.event_type == "call.ringing"
    assert json.loads(receivers.got(url)[0].body)["data"]["status"] == "ringing"


async def test_test_event_reaches_the_endpoint(world: World, receivers: Receivers) -> None:
    url = receivers.url(answers(200))
    endpoint = await world.endpoint(url, events=["call.completed"])
    event = Event(type=EventType.WEBHOOK_TEST, tenant_id=world.tenant.tenant_id, data={"x": 1})
    await world.bus.publish(event)
    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    payload = Webhook(endpoint.secret).verify(
        receivers.got(url)[0].body, receivers.got(url)[0].headers
    )
    assert payload["type"] == "webhook.test"
    assert payload["data"] == {"x": 1}


# --- retries ---------------------------------------------------------------------------


async def test_flaky_receiver_gets_one_success_after_three_attempts(
    world: World, receivers: Receivers
) -> None:
    url = receivers.url(answers(500, 502, 200))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempts] == [500, 502, 200]
    assert [a.error for a in delivery.attempts] == ["HTTP 500", "HTTP 502", None]
    hits = receivers.got(url)
    assert len(hits) == 3
    assert {h.headers["webhook-id"] for h in hits} == {event.id}
    assert {h.body for h in hits} == {delivery.payload.encode()}


async def test_a_url_changed_between_retries_settles_the_old_delivery(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(webhook_retry_delays=[0.5, 0.5, 0.5])
    old_url = receivers.url(answers(500))
    new_url = receivers.url(answers(200))
    await world.endpoint(old_url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    async def first_attempt_failed() -> bool:
        return len(receivers.got(old_url)) == 1

    await eventually(first_attempt_failed)
    await world.endpoint(new_url)  # the customer moves their endpoint

    deliveries = {d.url: d for d in await world.settled(event.id, count=2)}
    abandoned, moved = deliveries[old_url], deliveries[new_url]
    assert abandoned.status == DeliveryStatus.FAILED
    assert abandoned.attempts[-1].status_code is None
    assert "no longer receives this event" in (abandoned.attempts[-1].error or "")
    assert moved.status == DeliveryStatus.DELIVERED
    assert len(receivers.got(old_url)) == 1
    assert len(receivers.got(new_url)) == 1


async def test_an_endpoint_deleted_between_retries_leaves_nothing_pending(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(webhook_retry_delays=[0.5, 0.5, 0.5])
    url = receivers.url(answers(503))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    async def first_attempt_failed() -> bool:
        return len(receivers.got(url)) == 1

    await eventually(first_attempt_failed)
    assert await world.store.delete_webhook_endpoint(world.tenant.tenant_id)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    assert len(receivers.got(url)) == 1


async def test_always_failing_receiver_ends_failed_and_replay_resends(
    world: World, receivers: Receivers
) -> None:
    outcomes = [500]

    async def script(_: int) -> Response:
        return Response("down", status_code=outcomes[-1])

    url = receivers.url(script)
    endpoint = await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    assert [a.status_code for a in delivery.attempts] == [500, 500, 500]  # 1 + 2 retries
    assert len(receivers.got(url)) == 3

    # Replay while it still fails: a fresh schedule, then failed again.
    replay = Event(
        type=EventType.WEBHOOK_REPLAY_REQUESTED,
        tenant_id=world.tenant.tenant_id,
        data={"delivery_id": delivery.delivery_id},
    )
    await world.bus.publish(replay)

    async def attempts(n: int) -> Delivery | None:
        found = await world.store.get_delivery(delivery.delivery_id)
        ok = found and len(found.attempts) == n and found.status != DeliveryStatus.PENDING
        return found if ok else None

    again = await eventually(lambda: attempts(6))
    assert again.status == DeliveryStatus.FAILED

    outcomes.append(200)
    # A second request (its own id and time) for the same delivery.
    await world.bus.publish(replay.model_copy(update={"id": "evt_again", "occurred_at": utcnow()}))
    fixed = await eventually(lambda: attempts(7))
    assert fixed.status == DeliveryStatus.DELIVERED
    hits = receivers.got(url)
    assert len(hits) == 7
    assert hits[-1].body == hits[0].body
    assert hits[-1].headers["webhook-id"] == event.id
    Webhook(endpoint.secret).verify(hits[-1].body, hits[-1].headers)


async def test_replay_of_a_delivered_delivery_sends_it_again(
    world: World, receivers: Receivers
) -> None:
    url = receivers.url(answers(200))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)
    [delivery] = await world.settled(event.id)

    replay = Event(
        type=EventType.WEBHOOK_REPLAY_REQUESTED,
        tenant_id=world.tenant.tenant_id,
        data={"delivery_id": delivery.delivery_id},
    )
    context = MessageContext(attempt=1, max_attempts=3, redelivered=False)
    await world.notifier.handle(replay, context)
    assert len(receivers.got(url)) == 2
    # The same replay message redelivered: already done since it was requested.
    await world.notifier.handle(replay, MessageContext(attempt=1, max_attempts=3, redelivered=True))
    assert len(receivers.got(url)) == 2
    # Another tenant cannot replay it.
    foreign = replay.model_copy(update={"tenant_id": "someone-else", "id": "evt_other"})
    await world.notifier.handle(foreign, context)
    assert len(receivers.got(url)) == 2


@pytest.mark.parametrize("status", [400, 410])
async def test_client_errors_are_not_retried(
    world: World, receivers: Receivers, status: int
) -> None:
    url = receivers.url(answers(status, 200))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    assert [a.status_code for a in delivery.attempts] == [status]
    # Longer than the whole schedule: a retry would have come by now.
    await asyncio.sleep(0.5)
    assert len(receivers.got(url)) == 1


async def test_redirect_is_not_followed(world: World, receivers: Receivers) -> None:
    target = receivers.url(answers(200))
    url = receivers.url(answers(302, headers={"Location": target}))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    [attempt] = delivery.attempts
    assert attempt.status_code == 302
    assert "redirect" in (attempt.error or "")
    assert receivers.got(target) == []


async def test_slow_receiver_times_out_and_is_retried(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(webhook_timeout_seconds=0.3)

    async def script(n: int) -> Response:
        if n == 1:
            await asyncio.sleep(1.0)
        return Response("ok")

    url = receivers.url(script)
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    first, second = delivery.attempts
    assert first.status_code is None
    assert "0.3" in (first.error or "")
    assert first.latency_ms is not None
    assert first.latency_ms < 900
    assert second.status_code == 200


async def test_429_retry_after_is_honoured(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(webhook_retry_delays=[0.05, 1.0])
    url = receivers.url(answers(429, 200, headers={"Retry-After": "1"}))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempts] == [429, 200]
    first, second = receivers.got(url)
    # The schedule alone would have retried after 0.05 s.
    assert second.at - first.at >= 0.95


async def test_connection_refused_is_retried_then_failed(
    world: World, receivers: Receivers
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)
    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    assert len(delivery.attempts) == 3
    assert all(a.status_code is None and a.error for a in delivery.attempts)


async def test_ssrf_guard_refuses_at_send_time(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(webhook_allow_private_networks=False)
    url = receivers.url(answers(200))
    await world.endpoint(url)
    event = event_for(await world.call())
    refused_before = deliveries_ended("refused")
    await world.bus.publish(event)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.FAILED
    [attempt] = delivery.attempts
    assert attempt.status_code is None
    assert "loopback" in (attempt.error or "")
    assert receivers.got(url) == []
    assert deliveries_ended("refused") == refused_before + 1


# --- TLS: connect to the checked address, verify the certificate for the host name ----------


def make_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for `host` (its own trust anchor) and its key."""
    cert, key = directory / f"{host}.crt", directory / f"{host}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.asynccontextmanager
async def serving_tls(app: Any, cert: Path, key: Path) -> AsyncIterator[int]:
    """`app` over HTTPS on 127.0.0.1; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server, task))
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return bool(server.started)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    tmp_path: Path,
) -> None:
    if (await resolve("localhost", 443))[0] != ipaddress.ip_address("127.0.0.1"):
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    hits: list[str] = []

    async def hook(request: Request) -> Response:
        hits.append(request.headers["host"])
        return Response("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    cert, key = make_certificate(tmp_path, "localhost")
    trusted = ssl.create_default_context(cafile=str(cert))
    sender = WebhookSender(notifier_settings(), ssl_context=trusted)
    try:
        async with serving_tls(app, cert, key) as port:
            outcome = await sender.send(f"https://localhost:{port}/hook", b"{}", {})
            # Connected to 127.0.0.1, yet the certificate (DNS:localhost only) verified.
            assert outcome.result is AttemptResult.DELIVERED, outcome.attempt.error
            assert hits == [f"localhost:{port}"]
        other_cert, other_key = make_certificate(tmp_path, "other.example")
        other = ssl.create_default_context(cafile=str(other_cert))
        mismatched = WebhookSender(notifier_settings(), ssl_context=other)
        try:
            async with serving_tls(app, other_cert, other_key) as port:
                outcome = await mismatched.send(f"https://localhost:{port}/hook", b"{}", {})
            assert outcome.result is AttemptResult.RETRY
            assert "certificate" in (outcome.attempt.error or "").lower()
            assert len(hits) == 1
        finally:
            await mismatched.close()
    finally:
        await sender.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_a_connection_is_kept_alive_for_its_host_name_and_never_carries_another_names(
    tmp_path: Path,
) -> None:
    if (await resolve("localhost", 443))[0] != ipaddress.ip_address("127.0.0.1"):
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    peers: list[int] = []

    async def hook(request: Request) -> Response:
        assert request.client is not None
        peers.append(request.client.port)
        return Response("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    cert, key = make_certificate(tmp_path, "localhost")
    sender = WebhookSender(
        notifier_settings(), ssl_context=ssl.create_default_context(cafile=str(cert))
    )
    try:
        async with serving_tls(app, cert, key) as port:
            for _ in range(3):
                outcome = await sender.send(f"https://localhost:{port}/hook", b"{}", {})
                assert outcome.result is AttemptResult.DELIVERED, outcome.attempt.error
            # 127.0.0.1 is the address localhost's kept-alive connection goes to, but the
            # certificate names only localhost: a new connection, and it fails to verify.
            outcome = await sender.send(f"https://127.0.0.1:{port}/hook", b"{}", {})
        assert len(set(peers)) == 1, "one connection carried the three webhooks"
        assert len(peers) == 3
        assert outcome.result is AttemptResult.RETRY
        assert "certificate" in (outcome.attempt.error or "").lower()
    finally:
        await sender.close()


# --- idempotency -----------------------------------------------------------------------


async def test_redelivered_event_is_not_delivered_twice(world: World, receivers: Receivers) -> None:
    url = receivers.url(answers(200))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.bus.publish(event)
    await world.settled(event.id)

    redelivered = MessageContext(attempt=1, max_attempts=3, redelivered=True)
    await world.notifier.handle(event, redelivered)
    await world.bus.publish(event)  # a duplicate publish (outbox relay) too
    await world.notifier.handle(event, MessageContext(attempt=2, max_attempts=3, redelivered=False))
    await asyncio.sleep(0.3)
    assert len(receivers.got(url)) == 1
    [delivery] = await world.deliveries()
    assert len(delivery.attempts) == 1


async def test_a_failed_first_attempt_is_scheduled_in_the_store_and_the_message_acked(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    # The next retry far away: what is left to do is in the store, not in the bus.
    world = await world_factory(webhook_retry_delays=[30.0])
    url = receivers.url(answers(503, 200))
    await world.endpoint(url)
    event = event_for(await world.call())
    before = utcnow()
    await world.notifier.handle(event, CONTEXT)  # returns (no RetryLater): the message is acked

    [delivery] = await world.deliveries()
    assert delivery.status == DeliveryStatus.PENDING
    assert [a.status_code for a in delivery.attempts] == [503]
    assert delivery.schedule_attempts == 1
    assert delivery.next_attempt_at is not None
    assert before + timedelta(seconds=29) < delivery.next_attempt_at
    assert delivery.next_attempt_at <= utcnow() + timedelta(seconds=30)
    # A redelivered copy of the message finds the delivery made: the scheduler's, not its.
    redelivered = MessageContext(attempt=1, max_attempts=CONTEXT.max_attempts, redelivered=True)
    await world.notifier.handle(event, redelivered)
    assert len(receivers.got(url)) == 1
    assert await world.store.get_delivery(delivery.delivery_id) == delivery


async def test_after_the_schedule_s_last_delay_the_delivery_ends_failed(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(workers=False, webhook_retry_delays=[0.01])
    url = receivers.url(answers(503))
    await world.endpoint(url)
    event = event_for(await world.call())
    exhausted_before = deliveries_ended("exhausted")
    await world.notifier.handle(event, CONTEXT)
    [pending] = await world.deliveries()
    assert pending.status == DeliveryStatus.PENDING

    await asyncio.sleep(0.05)
    scheduler = DeliveryScheduler(world.store, world.notifier, world.settings)
    assert await scheduler.run_once() == 1
    [failed] = await world.deliveries()
    assert failed.status == DeliveryStatus.FAILED
    assert [a.status_code for a in failed.attempts] == [503, 503]
    assert failed.next_attempt_at is None
    assert await scheduler.run_once() == 0  # kept for a replay, never attempted again
    assert len(receivers.got(url)) == 2
    assert deliveries_ended("exhausted") == exhausted_before + 1


def deliveries_ended(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "switchboard_webhook_deliveries_ended_total", {"reason": reason}
    )
    return value or 0.0


# --- the store remembers pending work, not the broker ---------------------------------------


async def test_a_pending_delivery_is_retried_from_the_store_with_the_bus_gone(
    world_factory: Callable[..., Awaitable[World]],
    receivers: Receivers,
    broker_url: str,
    unique_name: str,
) -> None:
    exchange, prefix = f"{unique_name}.events", f"{unique_name}."
    queue = prefix + QUEUE
    bus = RabbitBus(broker_url, exchange=exchange, queue_prefix=prefix)
    world = await world_factory(bus=bus, webhook_retry_delays=[1.5])
    try:
        url = receivers.url(answers(500, 200))
        endpoint = await world.endpoint(url)
        event = event_for(await world.call())
        await bus.publish(event)

        async def first_attempt_recorded() -> bool:
            found = await world.deliveries()
            return len(found) == 1 and len(found[0].attempts) == 1

        await eventually(first_attempt_recorded)
        # The notifier loses the broker (an outage, as far as it can tell): consuming
        # stops, and the message, acked, is in no queue, retry queues included.
        await bus.close()
        closed_at = time.monotonic()
        depths = await queue_depths(
            broker_url, [queue, *(retry_queue(queue, d) for d in HANDLER_RETRY_DELAYS)]
        )
        assert not any(depths.values()), depths

        [delivery] = await world.settled(event.id)
        assert delivery.status == DeliveryStatus.DELIVERED
        assert [a.status_code for a in delivery.attempts] == [500, 200]
        hits = receivers.got(url)
        assert len(hits) == 2
        assert hits[1].at >= closed_at
        for hit in hits:
            Webhook(endpoint.secret).verify(hit.body, hit.headers)
            assert_nothing_provider_related(hit)
    finally:
        await bus.close()
        await _delete_rabbit_topology(broker_url, exchange, queue, list(HANDLER_RETRY_DELAYS))


def hanging_at(n_hanging: int, release: asyncio.Event) -> Script:
    """Answer 500 before the `n_hanging`-th request, hang on it until `release`, then 200."""

    async def script(n: int) -> Response:
        if n < n_hanging:
            return Response("down", status_code=500)
        if n == n_hanging:
            await release.wait()
        return Response("ok")

    return script


async def test_a_notifier_killed_mid_first_attempt_leads_to_exactly_one_more_attempt(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(delivery_lease_seconds=1.0, webhook_timeout_seconds=10)
    release = asyncio.Event()
    url = receivers.url(hanging_at(1, release))
    await world.endpoint(url)
    event = event_for(await world.call())
    doomed = WebhookNotifier(world.store, world.bus, world.settings)
    try:
        dying = asyncio.create_task(doomed.handle(event, CONTEXT))
        await eventually(lambda: _hits(receivers, url, 1))
        dying.cancel()  # killed mid-attempt: the attempt is never recorded
        with contextlib.suppress(asyncio.CancelledError):
            await dying

        [delivery] = await world.settled(event.id)
        assert delivery.status == DeliveryStatus.DELIVERED
        assert [a.status_code for a in delivery.attempts] == [200]
        first, second = receivers.got(url)
        assert second.at - first.at >= 0.9  # the scheduler waited for the lease to end
        await asyncio.sleep(1.5)  # longer than a lease: nothing more
        assert len(receivers.got(url)) == 2
    finally:
        release.set()
        await doomed.close()


async def test_a_scheduler_killed_mid_retry_leads_to_exactly_one_more_attempt(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(
        workers=False,
        delivery_lease_seconds=1.0,
        webhook_timeout_seconds=10,
        webhook_retry_delays=[0.05, 0.05],
    )
    release = asyncio.Event()
    url = receivers.url(hanging_at(2, release))
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.notifier.handle(event, CONTEXT)  # 500: pending, due in 0.05 s
    await asyncio.sleep(0.1)
    try:
        doomed = DeliveryScheduler(world.store, world.notifier, world.settings)
        dying = asyncio.create_task(doomed.run_once())
        await eventually(lambda: _hits(receivers, url, 2))
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dying

        world.start_workers()  # another notifier's scheduler
        [delivery] = await world.settled(event.id)
        assert delivery.status == DeliveryStatus.DELIVERED
        assert [a.status_code for a in delivery.attempts] == [500, 200]
        _, second, third = receivers.got(url)
        assert third.at - second.at >= 0.9
        await asyncio.sleep(1.5)
        assert len(receivers.got(url)) == 3
    finally:
        release.set()


async def test_sigterm_lets_a_scheduled_attempt_under_way_finish(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(workers=False, webhook_retry_delays=[0.05])

    async def script(n: int) -> Response:
        if n == 1:
            return Response("down", status_code=500)
        await asyncio.sleep(0.5)
        return Response("ok")

    url = receivers.url(script)
    await world.endpoint(url)
    event = event_for(await world.call())
    await world.notifier.handle(event, CONTEXT)
    scheduler = DeliveryScheduler(world.store, world.notifier, world.settings)
    worker = draining(PeriodicTask("webhook-retries", scheduler.run_once, 0.05), scheduler.drain)
    await worker.start()
    await eventually(lambda: _hits(receivers, url, 2))
    await worker.stop()  # what SIGTERM does

    [delivery] = await world.deliveries()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempts] == [500, 200]
    assert await scheduler.run_once() == 0  # a drained scheduler claims nothing more


async def _hits(receivers: Receivers, url: str, count: int) -> bool:
    return len(receivers.got(url)) >= count


async def test_the_sweep_delivers_an_ended_call_whose_event_never_arrived(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(notify_sweep_after_seconds=0.3)
    url = receivers.url(answers(200))
    endpoint = await world.endpoint(url)
    ended = time.monotonic()
    call = await world.call(notify_pending=True)  # ended; its call.completed never came
    event = event_for(call)

    [delivery] = await world.settled(event.id)
    assert delivery.status == DeliveryStatus.DELIVERED
    [hit] = receivers.got(url)
    assert hit.at - ended >= 0.25  # not before `notify_sweep_after_seconds`
    assert hit.headers["webhook-id"] == event.id
    payload = Webhook(endpoint.secret).verify(hit.body, hit.headers)
    assert payload["type"] == "call.completed"
    assert payload["data"] == call.public_view().model_dump(mode="json")
    swept = await world.store.get_call(call.call_id)
    assert swept is not None
    assert swept.notify_pending is False

    # The lost event turns up after all (the outbox relay): the same event, not resent.
    await world.bus.publish(event)
    await asyncio.sleep(0.3)
    assert len(receivers.got(url)) == 1
    assert len(await world.deliveries()) == 1


async def test_a_handled_completion_clears_its_call_for_the_sweep(
    world_factory: Callable[..., Awaitable[World]], receivers: Receivers
) -> None:
    world = await world_factory(notify_sweep_after_seconds=30)
    url = receivers.url(answers(200))
    await world.endpoint(url)
    call = await world.call(notify_pending=True)
    await world.bus.publish(event_for(call))
    await world.settled(event_for(call).id)
    handled = await world.store.get_call(call.call_id)
    assert handled is not None
    assert handled.notify_pending is False

    # No target at all (the endpoint does not take call.completed): cleared too.
    await world.endpoint(url, events=["call.ringing"])
    untargeted = await world.call(notify_pending=True)
    await world.notifier.handle(event_for(untargeted), CONTEXT)
    cleared = await world.store.get_call(untargeted.call_id)
    assert cleared is not None
    assert cleared.notify_pending is False
    assert [d.call_id for d in await world.deliveries()] == [call.call_id]


async def _delete_rabbit_topology(
    broker_url: str, exchange: str, queue: str, delays: list[float]
) -> None:
    import aio_pika

    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        for name in [queue, f"{queue}.dlq", *(retry_queue(queue, d) for d in delays)]:
            await channel.queue_delete(name)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()
