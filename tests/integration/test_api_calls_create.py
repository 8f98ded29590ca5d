"""POST /v1/calls: the quickstart, validation, idempotency, and the call.requested event."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls import outbox
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.calls.outbox import OutboxRelay
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.ports import MessageContext, Subscription
from tests.support.api_client import ApiHarness, running_api
from tests.support.net import eventually

CALL = {"phone": "+996700000000", "agent": "altynai"}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-create"))) as harness:
        yield harness


@pytest.fixture
async def client(api: ApiHarness) -> httpx.AsyncClient:
    _, client = await api.tenant()
    return client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def assert_created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"call_id", "status"}
    assert body["status"] == "queued"
    assert str(uuid.UUID(body["call_id"])) == body["call_id"]
    return body["call_id"]


# --- the public contract ---------------------------------------------------------------


async def test_a_created_call_is_stored_queued_and_its_event_confirmed(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    body = {
        **CALL,
        "variables": {"name": "Aigerim", "order": 42},
        "metadata": {"crm_id": "c-1"},
        "webhook_url": "https://example.com/hooks/calls?x=1",
    }
    call_id = assert_created(await client.post("/v1/calls", json=body))
    call = await api.store.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.QUEUED
    assert call.sequence == 1
    assert call.variables == body["variables"]
    assert call.metadata == body["metadata"]
    assert call.webhook_url == body["webhook_url"]
    assert call.provider is None
    # Published just after the 201 (no relay runs here): the pending flag clears.

    async def published() -> bool:
        stored = await api.store.get_call(call_id)
        return stored is not None and not stored.publish_pending

    await eventually(published, within=5)


async def test_call_requested_reaches_a_bus_subscriber(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    received: list[Event] = []

    async def handle(event: Event, _: MessageContext) -> None:
        received.append(event)

    await api.bus.subscribe(
        Subscription(
            queue=f"test.api-created-{uuid.uuid4().hex[:8]}",
            routing_keys=(EventType.CALL_REQUESTED.value,),
            handler=handle,
        )
    )
    call_id = assert_created(await client.post("/v1/calls", json=CALL))

    async def arrived() -> Event | None:
        return next((e for e in received if e.call_id == call_id), None)

    event = await eventually(arrived, within=10)
    call = await api.store.get_call(call_id)
    assert call is not None
    assert event.type is EventType.CALL_REQUESTED
    assert event.tenant_id == call.tenant_id
    assert event.sequence == 1
    assert event.data["call_id"] == call_id
    assert event.data["status"] == "queued"


async def test_calls_created_metric_counts_new_calls_only(client: httpx.AsyncClient) -> None:
    def count() -> float:
        value = REGISTRY.get_sample_value("switchboard_calls_created_total", {"agent": "altai"})
        return value or 0.0

    before = count()
    headers = {"Idempotency-Key": f"metric-{uuid.uuid4()}"}
    body = {"phone": "+996700000000", "agent": "altai"}
    assert_created(await client.post("/v1/calls", json=body, headers=headers))
    assert_created(await client.post("/v1/calls", json=body, headers=headers))  # replay
    assert count() == before + 1


async def test_a_broker_that_does_not_confirm_still_gives_201_and_leaves_the_event_pending(
    api: ApiHarness, tmp_path: Path
) -> None:
    down = InProcessBus()
    await down.close()  # a closed bus raises PublishError, as a broker that is down
    async with running_api(tmp_path, store=api.store, bus=down) as degraded:
        tenant, client = await degraded.tenant()
        call_id = assert_created(await client.post("/v1/calls", json=CALL))
    call = await api.store.get_call(call_id, tenant.tenant_id)
    assert call is not None
    assert call.status is CallStatus.QUEUED
    assert call.publish_pending is True

    # The relay publishes it once the broker is back.
    received: list[Event] = []

    async def handle(event: Event, _: MessageContext) -> None:
        received.append(event)

    back = InProcessBus()
    await back.start()
    try:
        await back.subscribe(Subscription("test.relay", ("call.requested",), handle))
        await OutboxRelay(api.store, back, min_age=0).run_once()

        async def relayed_event() -> list[Event]:
            return [e for e in received if e.call_id == call_id]

        await eventually(relayed_event, within=10)
    finally:
        await back.close()
    relayed = await api.store.get_call(call_id)
    assert relayed is not None
    assert relayed.publish_pending is False


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "996700000000",
        "+996 700 000 000",
        "+996-700-000-000",
        "0700000000",
        "+99600000000",
        "+1415555267",
        "+1234567890123456",
        "+",
        "",
        "call me",
    ],
)
async def test_invalid_phone_numbers_are_422_invalid_phone(
    client: httpx.AsyncClient, phone: str
) -> None:
    assert_error(
        await client.post("/v1/calls", json={**CALL, "phone": phone}), 422, "invalid_phone"
    )


@pytest.mark.parametrize(
    "agent",
    [
        "nobody",  # does not exist
        "retired",  # disabled
        "vip-only",  # reserved for tenant "vip"
        "ALTYNAI",  # keys are exact
        "",
    ],
)
async def test_agents_that_are_not_available_are_422_unknown_agent(
    client: httpx.AsyncClient, agent: str
) -> None:
    assert_error(
        await client.post("/v1/calls", json={**CALL, "agent": agent}), 422, "unknown_agent"
    )


async def test_an_agent_reserved_for_a_tenant_works_for_that_tenant(api: ApiHarness) -> None:
    _, vip = await api.tenant("vip")
    assert_created(await vip.post("/v1/calls", json={**CALL, "agent": "vip-only"}))


def _sized(total_bytes: int) -> dict[str, str]:
    """An object whose compact JSON is exactly `total_bytes` long."""
    return {"k": "a" * (total_bytes - len('{"k":""}'))}


async def test_variables_up_to_16_kib_are_accepted_and_larger_are_422(
    client: httpx.AsyncClient,
) -> None:
    assert_created(await client.post("/v1/calls", json={**CALL, "variables": _sized(16384)}))
    error = assert_error(
        await client.post("/v1/calls", json={**CALL, "variables": _sized(16385)}),
        422,
        "variables_too_large",
    )
    assert "16384" in error["message"]


async def test_sizes_count_utf8_bytes(client: httpx.AsyncClient) -> None:
    # 3000 Cyrillic letters: 3000 characters but 6000 bytes, over the 4 KiB metadata limit.
    assert_error(
        await client.post("/v1/calls", json={**CALL, "metadata": {"note": "ж" * 3000}}),
        422,
        "metadata_too_large",
    )


async def test_metadata_up_to_4_kib_is_accepted_and_larger_is_422(
    client: httpx.AsyncClient,
) -> None:
    assert_created(await client.post("/v1/calls", json={**CALL, "metadata": _sized(4096)}))
    assert_error(
        await client.post("/v1/calls", json={**CALL, "metadata": _sized(4097)}),
        422,
        "metadata_too_large",
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "/relative/path",
        "example.com/hook",
        "https://",
        "https:///nohost",
        "javascript:alert(1)",
        "https://exa mple.com/hook",
    ],
)
async def test_a_webhook_url_must_be_absolute_http_or_https(
    client: httpx.AsyncClient, url: str
) -> None:
    assert_error(
        await client.post("/v1/calls", json={**CALL, "webhook_url": url}),
        422,
        "invalid_webhook_url",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http, not allowed by the operator
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
    ],
)
async def test_a_webhook_url_the_guard_refuses_is_refused_at_creation(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post("/v1/calls", json={**CALL, "webhook_url": url})
    assert_error(response, 422, "invalid_webhook_url")
    assert "refused" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({**CALL, "unexpected": 1}, "unexpected"),
        ({**CALL, "provider": "x"}, "provider"),
        ({"agent": "altynai"}, "phone"),
        ({"phone": "+996700000000"}, "agent"),
        ({**CALL, "phone": 996700000000}, "phone"),
        ({**CALL, "variables": ["a", "b"]}, "variables"),
        ({**CALL, "metadata": "text"}, "metadata"),
        ({**CALL, "webhook_url": 5}, "webhook_url"),
        (["not", "an", "object"], "body"),
    ],
)
async def test_malformed_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: Any, names: str
) -> None:
    error = assert_error(await client.post("/v1/calls", json=body), 422, "validation_error")
    assert names in error["message"]


async def test_invalid_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/calls", content=b'{"phone": ', headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "validation_error")
    assert "JSON" in error["message"]


# --- idempotency ----------------------------------------------------------------------


async def test_same_key_and_body_replay_the_original_201(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {**CALL, "variables": {"a": 1, "b": [1, 2]}, "metadata": {"m": True}}
    first = await client.post("/v1/calls", json=body, headers=headers)
    call_id = assert_created(first)
    assert "idempotent-replayed" not in first.headers
    # Same data, other key order and spacing: the canonical body is the same.
    reordered = json.dumps(
        {"metadata": {"m": True}, "variables": {"b": [1, 2], "a": 1}, **CALL}, indent=2
    )
    for attempt in (
        await client.post("/v1/calls", json=body, headers=headers),
        await client.post(
            "/v1/calls",
            content=reordered,
            headers={**headers, "Content-Type": "application/json"},
        ),
    ):
        assert assert_created(attempt) == call_id
        assert attempt.json() == first.json()
        assert attempt.headers["idempotent-replayed"] == "true"


async def test_a_replay_returns_the_original_response_after_the_call_moved_on(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    call_id = assert_created(await client.post("/v1/calls", json=CALL, headers=headers))
    await api.store.update_call(call_id, CallChanges(status=CallStatus.DIALING))
    replay = await client.post("/v1/calls", json=CALL, headers=headers)
    assert replay.json() == {"call_id": call_id, "status": "queued"}


async def test_same_key_with_another_body_is_422(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    assert_created(await client.post("/v1/calls", json=CALL, headers=headers))
    for other in (
        {**CALL, "agent": "akylai"},
        {**CALL, "variables": {"x": 1}},
        {**CALL, "webhook_url": "https://example.com/h"},
    ):
        assert_error(
            await client.post("/v1/calls", json=other, headers=headers),
            422,
            "idempotency_key_reused",
        )


async def test_without_a_key_every_request_creates_a_call(client: httpx.AsyncClient) -> None:
    ids = {assert_created(await client.post("/v1/calls", json=CALL)) for _ in range(3)}
    assert len(ids) == 3


async def test_keys_are_per_tenant(api: ApiHarness) -> None:
    _, first = await api.tenant()
    _, second = await api.tenant()
    headers = {"Idempotency-Key": "shared-key-value"}
    one = assert_created(await first.post("/v1/calls", json=CALL, headers=headers))
    two = assert_created(await second.post("/v1/calls", json=CALL, headers=headers))
    assert one != two


async def test_an_idempotency_key_is_at_most_255_characters(client: httpx.AsyncClient) -> None:
    assert_created(
        await client.post("/v1/calls", json=CALL, headers={"Idempotency-Key": "k" * 255})
    )
    error = assert_error(
        await client.post("/v1/calls", json=CALL, headers={"Idempotency-Key": "k" * 256}),
        422,
        "validation_error",
    )
    assert "idempotency-key" in error["message"].lower()


# --- free-form JSON the stores can keep -----------------------------------------------------


def _with(field: str, raw_json: str) -> bytes:
    """A valid call whose `field` is the JSON text `raw_json`, sent as is."""
    fields = {"phone": '"+996700000000"', "agent": '"altynai"', field: raw_json}
    return ("{" + ", ".join(f'"{name}": {raw}' for name, raw in fields.items()) + "}").encode()


def _nested(levels: int) -> str:
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


async def _post_raw(client: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await client.post(
        "/v1/calls", content=body, headers={"Content-Type": "application/json", **headers}
    )


async def _stored_calls(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    listed = await client.get("/v1/calls")
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def test_metadata_up_to_32_levels_deep_is_kept_and_readable(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    call_id = assert_created(await _post_raw(client, _with("metadata", _nested(32))))
    got = await client.get(f"/v1/calls/{call_id}")
    assert got.status_code == 200
    assert got.json()["metadata"] == json.loads(_nested(32))
    assert [c["call_id"] for c in await _stored_calls(client)] == [call_id]
    call = await api.store.get_call(call_id)
    assert call is not None
    assert Event.from_bytes(outbox.event_for(call).to_bytes()).data["metadata"] == call.metadata


@pytest.mark.parametrize("field", ["variables", "metadata"])
async def test_33_levels_are_422_naming_the_field(client: httpx.AsyncClient, field: str) -> None:
    error = assert_error(
        await _post_raw(client, _with(field, _nested(33))), 422, "validation_error"
    )
    assert error["message"].startswith(f"{field}: ")
    assert "32 levels" in error["message"]
    assert await _stored_calls(client) == []


@pytest.mark.parametrize(
    "metadata",
    [
        *(_nested(levels) for levels in (64, 200, 250, 500, 1000)),
        '{"a": ' + "[" * 30_000 + "]" * 30_000 + "}",  # as deep as 64 KiB allows
    ],
    ids=["64", "200", "250", "500", "1000", "30000"],
)
async def test_deeply_nested_bodies_are_422_and_store_nothing(
    client: httpx.AsyncClient, metadata: str
) -> None:
    # 200-250 levels were stored and then broke every read; deeper ones were 500 or 400.
    headers = {"Idempotency-Key": f"deep-{uuid.uuid4()}"}
    for _ in range(2):  # a retry with the same key is answered the same
        response = await _post_raw(client, _with("metadata", metadata), **headers)
        error = assert_error(response, 422, "validation_error")
        assert "levels deep" in error["message"]
    assert await _stored_calls(client) == []
    # The refused requests did not use up the key.
    assert_created(await _post_raw(client, _with("metadata", "{}"), **headers))


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"x": NaN}', "NaN"),
        ('{"x": Infinity}', "Infinity"),
        ('{"x": [-Infinity]}', "Infinity"),
        ('{"x": 1e400}', "finite"),
        ('{"x": -1e400}', "finite"),
        (f'{{"x": {2**63}}}', "64-bit"),
        (f'{{"x": {-(2**63) - 1}}}', "64-bit"),
        (f'{{"x": {{"y": [1, {2**70}]}}}}', "64-bit"),
        ('{"x": ' + "9" * 5000 + "}", "digits"),
    ],
)
async def test_numbers_must_be_finite_and_fit_64_bits(
    client: httpx.AsyncClient, raw: str, says: str
) -> None:
    error = assert_error(await _post_raw(client, _with("variables", raw)), 422, "validation_error")
    assert says in error["message"]
    assert await _stored_calls(client) == []


async def test_the_place_of_a_bad_number_is_named(client: httpx.AsyncClient) -> None:
    body = _with("variables", f'{{"order": {{"items": [1, 2, {2**70}]}}}}')
    error = assert_error(await _post_raw(client, body), 422, "validation_error")
    assert error["message"].startswith("variables: at order.items[2]: ")


async def test_extreme_numbers_that_fit_are_kept_exactly(client: httpx.AsyncClient) -> None:
    variables = {
        "max": 2**63 - 1,
        "min": -(2**63),
        "big": 1.7976931348623157e308,
        "tiny": 5e-324,
        "neg_zero": -0.0,
    }
    call_id = assert_created(await client.post("/v1/calls", json={**CALL, "variables": variables}))
    got = (await client.get(f"/v1/calls/{call_id}")).json()["variables"]
    assert got == variables
    assert all(type(got[k]) is type(v) for k, v in variables.items())


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("metadata", '{"note": "\\ud800"}'),
        ("metadata", '{"note": ["ok", "\\udfff tail"]}'),
        ("variables", '{"\\udbff": 1}'),
        ("agent", '"\\ud800"'),
        ("webhook_url", '"https://example.com/\\ud800"'),
    ],
)
async def test_lone_surrogates_are_422(client: httpx.AsyncClient, field: str, raw: str) -> None:
    error = assert_error(await _post_raw(client, _with(field, raw)), 422, "validation_error")
    assert "surrogate" in error["message"]
    assert await _stored_calls(client) == []


async def test_a_surrogate_pair_escape_is_one_character(client: httpx.AsyncClient) -> None:
    call_id = assert_created(await _post_raw(client, _with("metadata", '{"e": "\\ud83d\\ude00"}')))
    assert (await client.get(f"/v1/calls/{call_id}")).json()["metadata"] == {"e": "\U0001f600"}


async def test_nul_is_refused_in_keys_and_kept_in_strings(client: httpx.AsyncClient) -> None:
    # MongoDB cannot store a key with NUL; a string value with NUL is fine everywhere.
    error = assert_error(
        await _post_raw(client, _with("metadata", '{"a\\u0000b": 1}')), 422, "validation_error"
    )
    assert "NUL" in error["message"]
    call_id = assert_created(await _post_raw(client, _with("metadata", '{"a": "x\\u0000y"}')))
    assert (await client.get(f"/v1/calls/{call_id}")).json()["metadata"] == {"a": "x\x00y"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"phone": "\xff\xfe", "agent": "altynai"}',
        b'{"phone": "+996700000000", "agent": "\xc3\x28"}',
        '{"phone": "+996700000000", "agent": "altynai"}'.encode("utf-16"),
    ],
)
async def test_a_body_that_is_not_utf8_is_422_invalid_json(
    client: httpx.AsyncClient, body: bytes
) -> None:
    error = assert_error(await _post_raw(client, body), 422, "validation_error")
    assert "not valid JSON" in error["message"]
    assert "UTF-8" in error["message"]
