"""`/v1/webhooks` and `/v1/webhook-deliveries` over real HTTP, with the notifier running on
the same in-process bus and store, delivering to receivers on loopback."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchboard_api.app import create_app
from switchboard_notifier.handler import WebhookNotifier
from switchboard_notifier.scheduler import DeliveryScheduler
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import Delivery, DeliveryAttempt, DeliveryStatus
from switchboard_shared.ports import Store
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.settings import Settings
from switchboard_testing.servers import serving
from tests.support.api_client import create_tenant_with_key
from tests.support.net import eventually
from tests.support.stores import open_store

pytestmark = pytest.mark.timeout(60)

RELAXED = Settings(
    webhook_allow_http=True,
    webhook_allow_private_networks=True,
    webhook_retry_delays=[0.05, 0.05],
    webhook_timeout_seconds=2,
    webhook_secret_rotation_hours=1,
    delivery_poll_interval_seconds=0.05,
)
STRICT = Settings()


@dataclass
class Receiver:
    """One loopback app; each test takes paths of its own with a status to answer."""

    base_url: str = ""
    statuses: dict[str, int] = field(default_factory=dict)
    hits: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)

    def url(self, status: int = 200) -> str:
        path = f"/hook/{uuid.uuid4().hex}"
        self.statuses[path] = status
        self.hits[path] = []
        return self.base_url + path

    def answer(self, url: str, status: int) -> None:
        self.statuses[url.removeprefix(self.base_url)] = status

    def got(self, url: str) -> list[tuple[dict[str, str], bytes]]:
        return self.hits[url.removeprefix(self.base_url)]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.hits.setdefault(path, []).append((dict(request.headers), await request.body()))
        return Response("thanks", status_code=self.statuses.get(path, 404))


@dataclass
class Api:
    store: Store
    relaxed_url: str
    strict_url: str
    receiver: Receiver
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    async def tenant(self, *, strict: bool = False) -> tuple[str, httpx.AsyncClient]:
        tenant, raw = await create_tenant_with_key(self.store)
        client = httpx.AsyncClient(
            base_url=self.strict_url if strict else self.relaxed_url,
            headers={"Authorization": f"Bearer {raw}"},
            timeout=10,
        )
        self.clients.append(client)
        return tenant.tenant_id, client


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp_path = Path(tmp_path_factory.mktemp("api-webhooks"))
    receiver = Receiver()
    receiver_app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store("sqlite", tmp_path=tmp_path))
        bus = InProcessBus(close_timeout=2)
        await bus.start()
        stack.push_async_callback(bus.close)
        notifier = WebhookNotifier(store, bus, RELAXED)
        stack.push_async_callback(notifier.close)
        await bus.subscribe(notifier.subscription())
        # Webhook retries come from the store: the notifier's scheduler makes them.
        retries = PeriodicTask(
            "webhook-retries",
            DeliveryScheduler(store, notifier, RELAXED).run_once,
            RELAXED.delivery_poll_interval_seconds,
        )
        retries.start()
        stack.push_async_callback(retries.stop)
        receiver.base_url = await stack.enter_async_context(serving(receiver_app))
        relaxed = create_app(settings=RELAXED, store=store, bus=bus)
        strict = create_app(settings=STRICT, store=store, bus=bus)
        made = Api(
            store=store,
            relaxed_url=await stack.enter_async_context(serving(relaxed)),
            strict_url=await stack.enter_async_context(serving(strict)),
            receiver=receiver,
        )
        yield made
        for client in made.clients:
            await client.aclose()


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --- endpoint and secret -------------------------------------------------------------------


async def test_put_shows_the_secret_once(api: Api) -> None:
    tenant_id, client = await api.tenant()
    url = api.receiver.url()
    created = await client.put("/v1/webhooks", json={"url": url})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == url
    assert body["events"] == ["call.completed", "session.ended"]
    assert body["secret"].startswith("whsec_")
    assert set(body) == {"url", "events", "created_at", "updated_at", "secret"}

    shown = await client.get("/v1/webhooks")
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    assert shown.json()["url"] == url

    updated = await client.put(
        "/v1/webhooks", json={"url": url, "events": ["call.ringing", "call.completed"]}
    )
    assert updated.status_code == 200
    assert "secret" not in updated.json()
    assert updated.json()["events"] == ["call.ringing", "call.completed"]
    stored = await api.store.get_webhook_endpoint(tenant_id)
    assert stored is not None
    assert stored.secret == body["secret"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"url": ""},
        {"url": "https://example.com", "events": []},
        {"url": "https://example.com", "events": ["call.requested"]},
        {"url": "https://example.com", "events": ["call.cancel_requested"]},
        {"url": "https://example.com", "secret": "mine"},
    ],
)
async def test_put_validates_the_body(api: Api, payload: dict[str, Any]) -> None:
    _, client = await api.tenant()
    response = await client.put("/v1/webhooks", json=payload)
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://8.8.8.8/hook", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.0.0.8/hook", "private"),
        ("https://169.254.169.254/latest", "metadata"),
        ("https://[::ffff:169.254.169.254]/", "metadata"),
        ("https://localhost:8443/", "loopback"),
        ("ftp://files.example.com/", "https"),
    ],
)
async def test_ssrf_guard_refuses_at_registration(api: Api, url: str, reason: str) -> None:
    tenant_id, client = await api.tenant(strict=True)
    response = await client.put("/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    assert error_code(response) == "invalid_webhook_url"
    assert reason in response.json()["error"]["message"]
    assert await api.store.get_webhook_endpoint(tenant_id) is None


async def test_metadata_is_refused_even_when_private_networks_are_allowed(api: Api) -> None:
    _, client = await api.tenant()
    response = await client.put("/v1/webhooks", json={"url": "http://169.254.169.254/"})
    assert response.status_code == 422
    assert error_code(response) == "invalid_webhook_url"


async def test_get_and_delete(api: Api) -> None:
    _, client = await api.tenant()
    missing = await client.get("/v1/webhooks")
    assert missing.status_code == 404
    assert error_code(missing) == "webhook_not_configured"
    assert (await client.put("/v1/webhooks", json={"url": api.receiver.url()})).status_code == 201
    assert (await client.delete("/v1/webhooks")).status_code == 204
    assert (await client.get("/v1/webhooks")).status_code == 404
    again = await client.delete("/v1/webhooks")
    assert again.status_code == 404
    assert error_code(again) == "webhook_not_configured"
    # Deleted means nothing kept: configuring again issues a new secret.
    assert "secret" in (await client.put("/v1/webhooks", json={"url": api.receiver.url()})).json()


async def test_rotation_signs_with_both_secrets_then_only_the_new_one(api: Api) -> None:
    tenant_id, client = await api.tenant()
    url = api.receiver.url()
    old = (await client.put("/v1/webhooks", json={"url": url})).json()["secret"]
    rotated = await client.post("/v1/webhooks/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert "secret" not in (await client.get("/v1/webhooks")).json()

    test = await client.post("/v1/webhooks/test")
    assert test.status_code == 202
    event_id = test.json()["event_id"]
    await eventually(lambda: _async(len(api.receiver.got(url)) == 1))
    headers, body = api.receiver.got(url)[0]
    assert headers["webhook-id"] == event_id
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)

    # Once the window closes, only the new secret signs.
    endpoint = await api.store.get_webhook_endpoint(tenant_id)
    assert endpoint is not None
    assert endpoint.previous_secret_expires_at is not None
    assert endpoint.previous_secret_expires_at > utcnow() + timedelta(minutes=59)
    await api.store.put_webhook_endpoint(
        endpoint.model_copy(update={"previous_secret_expires_at": utcnow()})
    )
    await client.post("/v1/webhooks/test")
    await eventually(lambda: _async(len(api.receiver.got(url)) == 2))
    headers, body = api.receiver.got(url)[1]
    assert " " not in headers["webhook-signature"]
    Webhook(new).verify(body, headers)


async def test_rotate_without_an_endpoint_creates_the_per_call_secret(api: Api) -> None:
    tenant_id, client = await api.tenant()
    rotated = await client.post("/v1/webhooks/rotate-secret")
    assert rotated.status_code == 200
    endpoint = await api.store.get_webhook_endpoint(tenant_id)
    assert endpoint is not None
    assert endpoint.url is None
    assert endpoint.secret == rotated.json()["secret"]
    shown = (await client.get("/v1/webhooks")).json()
    assert shown["url"] is None
    # Setting a URL later keeps that secret.
    put = await client.put("/v1/webhooks", json={"url": api.receiver.url()})
    assert put.json()["secret"] == endpoint.secret


async def test_test_event_reaches_the_receiver_and_the_log(api: Api) -> None:
    _, client = await api.tenant()
    url = api.receiver.url()
    secret = (await client.put("/v1/webhooks", json={"url": url})).json()["secret"]
    accepted = await client.post("/v1/webhooks/test")
    assert accepted.status_code == 202
    event_id = accepted.json()["event_id"]

    await eventually(lambda: _async(len(api.receiver.got(url)) == 1))
    headers, body = api.receiver.got(url)[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "webhook.test"
    assert payload["id"] == event_id

    async def logged() -> list[dict[str, Any]]:
        listed = await client.get("/v1/webhook-deliveries", params={"event_type": "webhook.test"})
        data = listed.json()["data"]
        return data if data and data[0]["status"] == "delivered" else []

    [item] = await eventually(logged)
    assert item["event_id"] == event_id
    assert item["attempt_count"] == 1
    assert item["last_status_code"] == 200


async def test_test_event_needs_an_endpoint_url(api: Api) -> None:
    _, client = await api.tenant()
    response = await client.post("/v1/webhooks/test")
    assert response.status_code == 404
    assert error_code(response) == "webhook_not_configured"


# --- delivery log ----------------------------------------------------------------------------


async def seed(store: Store, tenant_id: str, count: int) -> list[Delivery]:
    """`count` deliveries across 2 calls, 3 statuses and 2 event types, with attempts."""
    made = []
    statuses = [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.PENDING]
    for i in range(count):
        delivery, _ = await store.create_delivery(
            Delivery(
                tenant_id=tenant_id,
                event_id=f"evt_seed_{uuid.uuid4().hex}",
                event_type="call.completed" if i % 2 else "call.ringing",
                call_id=f"call-{i % 2}",
                url="https://hooks.example.com/in",
                payload=json.dumps({"type": "call.completed", "id": f"evt_{i}", "data": {}}),
                created_at=utcnow() - timedelta(seconds=count - i),
            )
        )
        attempt = DeliveryAttempt(
            status_code=500 if i % 3 else 200, latency_ms=12, error="HTTP 500", response_body="x"
        )
        stored = await store.record_attempt(delivery.delivery_id, attempt, statuses[i % 3])
        assert stored is not None
        made.append(stored)
    return made


async def test_listing_pages_newest_first_and_filters(api: Api) -> None:
    tenant_id, client = await api.tenant()
    seeded = await seed(api.store, tenant_id, 7)
    expected = [d.delivery_id for d in sorted(seeded, key=lambda d: d.created_at, reverse=True)]

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/webhook-deliveries", params=params)).json()
        assert len(page["data"]) <= 3
        seen += [item["delivery_id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected

    for params, keep in [
        ({"call_id": "call-1"}, lambda d: d.call_id == "call-1"),
        ({"status": "failed"}, lambda d: d.status == DeliveryStatus.FAILED),
        ({"event_type": "call.ringing"}, lambda d: d.event_type == "call.ringing"),
        (
            {"status": "delivered", "call_id": "call-0"},
            lambda d: d.status == DeliveryStatus.DELIVERED and d.call_id == "call-0",
        ),
    ]:
        listed = await client.get("/v1/webhook-deliveries", params=params)
        assert listed.status_code == 200
        ids = [item["delivery_id"] for item in listed.json()["data"]]
        assert ids == [i for i in expected if keep(next(d for d in seeded if d.delivery_id == i))]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": 101}, 422, "validation_error"),
        ({"limit": 0}, 422, "validation_error"),
        ({"status": "lost"}, 422, "validation_error"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ],
)
async def test_listing_rejects_bad_parameters(
    api: Api, params: dict[str, Any], status: int, code: str
) -> None:
    _, client = await api.tenant()
    response = await client.get("/v1/webhook-deliveries", params=params)
    assert response.status_code == status
    assert error_code(response) == code


async def test_detail_shows_every_attempt(api: Api) -> None:
    tenant_id, client = await api.tenant()
    [delivery] = await seed(api.store, tenant_id, 1)
    shown = await client.get(f"/v1/webhook-deliveries/{delivery.delivery_id}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["delivery_id"] == delivery.delivery_id
    assert body["payload"] == json.loads(delivery.payload)
    [attempt] = body["attempts"]
    assert set(attempt) == {"at", "status_code", "latency_ms", "error", "response_body"}
    assert attempt["status_code"] == 200
    assert attempt["latency_ms"] == 12


async def test_deliveries_are_tenant_scoped(api: Api) -> None:
    owner_id, owner = await api.tenant()
    _, stranger = await api.tenant()
    [delivery] = await seed(api.store, owner_id, 1)
    path = f"/v1/webhook-deliveries/{delivery.delivery_id}"
    for response in (
        await stranger.get(path),
        await stranger.post(f"{path}/retry"),
        await owner.get("/v1/webhook-deliveries/dlv_nope"),
    ):
        assert response.status_code == 404
        assert error_code(response) == "delivery_not_found"
    assert (await stranger.get("/v1/webhook-deliveries")).json()["data"] == []
    assert (await owner.get(path)).status_code == 200


async def test_retry_endpoint_replays_a_failed_delivery(api: Api) -> None:
    _, client = await api.tenant()
    url = api.receiver.url(status=500)
    secret = (await client.put("/v1/webhooks", json={"url": url})).json()["secret"]
    await client.post("/v1/webhooks/test")

    async def delivery(status: str, attempts: int) -> dict[str, Any] | None:
        listed = (await client.get("/v1/webhook-deliveries")).json()["data"]
        if not listed:
            return None
        shown = (await client.get(f"/v1/webhook-deliveries/{listed[0]['delivery_id']}")).json()
        ok = shown["status"] == status and len(shown["attempts"]) == attempts
        return shown if ok else None

    failed = await eventually(lambda: delivery("failed", 3))
    assert [a["status_code"] for a in failed["attempts"]] == [500, 500, 500]

    api.receiver.answer(url, 200)
    replay = await client.post(f"/v1/webhook-deliveries/{failed['delivery_id']}/retry")
    assert replay.status_code == 202
    assert replay.json()["delivery_id"] == failed["delivery_id"]
    fixed = await eventually(lambda: delivery("delivered", 4))
    assert fixed["attempts"][-1]["status_code"] == 200
    headers, body = api.receiver.got(url)[-1]
    assert headers["webhook-id"] == failed["event_id"]
    Webhook(secret).verify(body, headers)
    assert len(api.receiver.got(url)) == 4


async def test_routes_need_a_key(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.relaxed_url) as anonymous:
        for method, path in [
            ("GET", "/v1/webhooks"),
            ("PUT", "/v1/webhooks"),
            ("DELETE", "/v1/webhooks"),
            ("POST", "/v1/webhooks/rotate-secret"),
            ("POST", "/v1/webhooks/test"),
            ("GET", "/v1/webhook-deliveries"),
            ("GET", "/v1/webhook-deliveries/dlv_x"),
            ("POST", "/v1/webhook-deliveries/dlv_x/retry"),
        ]:
            response = await anonymous.request(method, path)
            assert response.status_code == 401, (method, path)


async def test_openapi_declares_the_routes_without_provider_fields(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.relaxed_url) as anonymous:
        schema = (await anonymous.get("/openapi.json")).json()
    assert "/v1/webhooks" in schema["paths"]
    assert "/v1/webhook-deliveries/{delivery_id}/retry" in schema["paths"]
    mine = {p: v for p, v in schema["paths"].items() if p.startswith("/v1/webhook")}
    models = [
        "WebhookEndpointView",
        "WebhookEndpointRequest",
        "RotatedSecret",
        "DeliverySummary",
        "DeliveryDetail",
        "DeliveryAttemptView",
    ]
    text = json.dumps([mine, [schema["components"]["schemas"][m] for m in models]]).lower()
    assert "provider" not in text


async def _async(value: bool) -> bool:
    return value
