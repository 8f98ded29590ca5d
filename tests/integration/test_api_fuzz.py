"""Fuzzing the public API's write and list routes: any input is answered with a documented
4xx (or a success), never a 5xx, and every call that was accepted stays readable,
listable and dialable.

The app runs in-process (httpx's ASGI transport) over a real SQLite store and the
in-process bus, every router included as `create_app` builds it. Bodies are sent
as raw bytes, so the examples can carry what a JSON encoder would not produce: lone
surrogate escapes, `NaN`, numbers beyond any float, invalid UTF-8.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from switchboard_api.app import create_app
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls.events import Event
from switchboard_shared.calls.outbox import event_for
from switchboard_shared.ports import Store
from switchboard_shared.runtime.operator import load_agents_file
from switchboard_shared.runtime.settings import Settings
from tests.support.api_client import AGENTS_FILE, EXTRA_AGENTS, create_tenant_with_key
from tests.support.stores import open_store

pytestmark = pytest.mark.timeout(180)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# (status, code) of every row of the error table in docs/api.md.
DOCUMENTED_ERRORS = {
    (int(status), code)
    for status, code in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", DOCS.read_text(), re.M)
}
MAX_ERROR_BODY_BYTES = 2048

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,  # no .hypothesis/ in the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Api:
    store: Store
    client: httpx.AsyncClient

    async def tenant_headers(self) -> dict[str, str]:
        _, key = await create_tenant_with_key(self.store)
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with open_store("sqlite", tmp_path=Path(tmp_path_factory.mktemp("fuzz"))) as store:
        await load_agents_file(store, AGENTS_FILE)
        for agent in EXTRA_AGENTS:
            await store.upsert_agent(agent)
        bus = InProcessBus(close_timeout=2)
        await bus.start()
        # Private and plain-http webhook URLs are allowed, so loopback ones are accepted
        # without DNS (the URL guard's refusals have tests of their own).
        relaxed = Settings(webhook_allow_http=True, webhook_allow_private_networks=True)
        app = create_app(settings=relaxed, store=store, bus=bus)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api.test", timeout=10
            ) as client:
                yield Api(store=store, client=client)
        finally:
            await bus.close()


# --- the checks -------------------------------------------------------------------------


def assert_answered(response: httpx.Response) -> None:
    """A success, or an error of the documented shape, code and a small size."""
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    if response.status_code < 400:
        event(f"{response.request.method} {response.status_code}")
        return
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    event(f"{response.request.method} {response.status_code} {body['error']['code']}")
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    pair = (response.status_code, body["error"]["code"])
    assert pair in DOCUMENTED_ERRORS, f"{pair} is not in the error table of docs/api.md"
    assert len(response.content) < MAX_ERROR_BODY_BYTES, len(response.content)


def _sent_object(parsed: Any, name: str) -> dict[str, Any]:
    value = parsed.get(name) if isinstance(parsed, dict) else None
    return value or {}


async def assert_call_usable(api: Api, headers: dict[str, str], call_id: str, parsed: Any) -> None:
    """The accepted call reads, lists (with filters too) and its call.requested event
    survives serialization: what was accepted was stored exactly."""
    client = api.client
    variables, metadata = _sent_object(parsed, "variables"), _sent_object(parsed, "metadata")
    got = await client.get(f"/v1/calls/{call_id}", headers=headers)
    assert got.status_code == 200, got.text[:1000]
    view = got.json()
    assert view["call_id"] == call_id
    assert view["variables"] == variables
    assert view["metadata"] == metadata

    created = datetime.fromisoformat(view["created_at"].replace("Z", "+00:00"))
    for params in (
        {},
        {"status": "queued", "agent": view["agent"]},
        {
            "created_after": (created - timedelta(seconds=1)).isoformat(),
            "created_before": (created + timedelta(seconds=1)).isoformat(),
            "limit": "100",
        },
    ):
        listed = await client.get("/v1/calls", params=params, headers=headers)
        assert listed.status_code == 200, listed.text[:1000]
        assert call_id in [c["call_id"] for c in listed.json()["data"]], params

    stored = await api.store.get_call(call_id)
    assert stored is not None
    event = event_for(stored)
    again = Event.from_bytes(event.to_bytes())
    assert again.model_dump(mode="json") == event.model_dump(mode="json")
    assert again.data["variables"] == variables
    assert again.data["metadata"] == metadata
    # What a provider adapter does with the variables: strict JSON must encode them.
    json.dumps(again.data["variables"], allow_nan=False).encode()


# --- strategies -------------------------------------------------------------------------

# Any character, lone surrogates included (they reach the body as `\udXXX` escapes).
characters = st.characters() | st.characters(categories=["Cs"])
texts = st.text(characters, max_size=30)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()  # NaN and infinities included
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)
# Values every store keeps: most generated calls should be accepted.
storable_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
storable_objects = st.dictionaries(st.text(max_size=10), storable_values, max_size=5)


def mostly(
    usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any], times: int = 3
) -> st.SearchStrategy[Any]:
    """`usual` `times` times as often as `other`."""
    return st.one_of(*[usual] * times, other)


def nested_json(depth: int, *, leaf: str = "1") -> str:
    """`depth` levels of alternating objects and arrays, as JSON text."""
    opening = "".join('{"k":' if level % 2 == 0 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))
    return opening + leaf + closing


deep_objects = st.integers(min_value=1, max_value=120).map(
    lambda depth: json.loads(nested_json(depth))
)
phones = mostly(st.sampled_from(["+996700000000", "+14155552671", "+447911123456"]), texts, times=6)
agents = mostly(
    st.sampled_from(["altynai", "akylai", "altai"]),
    st.sampled_from(["nobody", "retired", "vip-only", "ALTYNAI"]) | texts,
    times=6,
)
urls = mostly(
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}/{path}",
        mostly(st.sampled_from(["https", "http"]), st.sampled_from(["ftp", "", "javascript"])),
        mostly(
            st.sampled_from(["127.0.0.1", "10.0.0.1", "[::1]", "127.0.0.1:8443"]),
            st.sampled_from(["169.254.169.254", "a" * 70, "[zz]", ""])
            | st.text(characters, max_size=15),
        ),
        st.text(characters, max_size=10),
    ),
    texts,
)
call_bodies = st.fixed_dictionaries(
    {"phone": phones, "agent": agents},
    optional={
        "variables": mostly(storable_objects, json_objects | deep_objects | json_values),
        "metadata": mostly(storable_objects, json_objects | deep_objects | json_values),
        "webhook_url": mostly(urls, json_values),
    },
)
# Now and then a field the API does not know.
call_bodies = mostly(
    call_bodies,
    st.builds(lambda body, extra: {**body, **extra}, call_bodies, json_objects),
)


@st.composite
def encoded(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """A document as JSON bytes, as a lenient encoder would write it (`NaN` included),
    with escapes or raw UTF-8 (lone surrogates then make invalid UTF-8); or any bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=200))
    document = draw(documents)
    if draw(st.integers(0, 3)) == 0:
        return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(document).encode()


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=260)
JSON_HEADERS = {"Content-Type": "application/json"}


# --- POST /v1/calls -------------------------------------------------------------------

_BASE = b'{"phone": "+996700000000", "agent": "altynai", '


def _call_with(field: str, raw_value: str) -> bytes:
    return _BASE + f'"{field}": {raw_value}}}'.encode()


@FUZZ
@given(
    body=encoded(mostly(call_bodies, json_values, times=6)),
    idempotency_key=st.none() | header_text,
)
@example(body=_call_with("metadata", nested_json(200, leaf="{}")), idempotency_key="deep-200")
@example(body=_call_with("metadata", nested_json(250, leaf="{}")), idempotency_key="deep-250")
@example(body=_call_with("metadata", nested_json(500, leaf="{}")), idempotency_key=None)
@example(body=_call_with("metadata", nested_json(1000, leaf="{}")), idempotency_key=None)
@example(body=_call_with("metadata", nested_json(32, leaf="{}")), idempotency_key=None)
@example(body=_call_with("variables", '{"x": NaN}'), idempotency_key=None)
@example(body=_call_with("variables", '{"x": Infinity}'), idempotency_key=None)
@example(body=_call_with("variables", '{"x": -Infinity}'), idempotency_key=None)
@example(body=_call_with("variables", '{"x": 1e400}'), idempotency_key=None)
@example(body=_call_with("variables", f'{{"x": {2**70}}}'), idempotency_key=None)
@example(body=_call_with("variables", f'{{"x": {2**63 - 1}}}'), idempotency_key=None)
@example(body=_call_with("variables", '{"x": ' + "9" * 5000 + "}"), idempotency_key=None)
@example(body=_call_with("metadata", '{"x": "\\ud800"}'), idempotency_key=None)
@example(body=_call_with("metadata", '{"\\ud800": 1}'), idempotency_key=None)
@example(body=_call_with("metadata", '{"a\\u0000b": 1}'), idempotency_key=None)
@example(body=b'{"phone": "\xff\xfe", "agent": "altynai"}', idempotency_key=None)
@example(body=b'{"phone": "+996700000000", "agent": "\xc3\x28"}', idempotency_key=None)
@example(
    body=json.dumps({"phone": "+996700000000", "agent": "k" * 60_000}).encode(),
    idempotency_key=None,
)
@example(
    body=json.dumps({"phone": "+996700000000", "agent": "a", "k" * 60_000: 1}).encode(),
    idempotency_key=None,
)
async def test_post_calls_never_fails_and_what_it_accepts_stays_usable(
    api: Api, body: bytes, idempotency_key: str | None
) -> None:
    await post_call_and_check(api, body, idempotency_key)


@settings(FUZZ, max_examples=150)
@given(
    fields=st.fixed_dictionaries(
        {"phone": st.just("+996700000000"), "agent": st.sampled_from(["altynai", "akylai"])},
        optional={
            "variables": mostly(storable_objects, json_objects | deep_objects),
            "metadata": mostly(storable_objects, json_objects | deep_objects),
            "webhook_url": urls,
        },
    ),
    idempotency_key=st.none() | st.uuids().map(str),
)
async def test_calls_with_any_variables_and_metadata_are_refused_or_stay_usable(
    api: Api, fields: dict[str, Any], idempotency_key: str | None
) -> None:
    """A valid call carrying generated free-form JSON: most are accepted, and must then
    read, list and dial; the others are refused, and nothing is stored."""
    await post_call_and_check(api, json.dumps(fields).encode(), idempotency_key)


async def post_call_and_check(api: Api, body: bytes, idempotency_key: str | None) -> None:
    headers = await api.tenant_headers()
    sent = {**headers, **JSON_HEADERS}
    if idempotency_key is not None:
        sent["Idempotency-Key"] = idempotency_key
    response = await api.client.post("/v1/calls", content=body, headers=sent)
    assert_answered(response)
    if response.status_code != 201:
        assert response.status_code in (413, 422), response.text
        # Nothing was stored for a refused request.
        listed = await api.client.get("/v1/calls", headers=headers)
        assert listed.status_code == 200
        assert listed.json()["data"] == []
        return
    call_id = response.json()["call_id"]
    await assert_call_usable(api, headers, call_id, json.loads(body))
    if idempotency_key:
        replay = await api.client.post("/v1/calls", content=body, headers=sent)
        assert replay.status_code == 201, replay.text
        assert replay.json()["call_id"] == call_id


# --- the other write routes -------------------------------------------------------------

webhook_bodies = st.fixed_dictionaries(
    {"url": mostly(urls, json_values)},
    optional={
        "events": mostly(
            st.lists(
                mostly(st.sampled_from(["call.completed", "call.dialing", "call.ringing"]), texts),
                max_size=4,
            ),
            json_values,
        )
    },
)


@settings(FUZZ, max_examples=150)
@given(body=encoded(mostly(webhook_bodies, json_values, times=6)))
@example(body=b'{"url": "https://example.com/\\ud800"}')
@example(body=b'{"url": "https://example.com/", "events": [NaN]}')
@example(body=b'{"url": "\xff"}')
@example(body=json.dumps({"url": "https://" + "h" * 60_000}).encode())
async def test_put_webhooks_never_fails(api: Api, body: bytes) -> None:
    headers = await api.tenant_headers()
    response = await api.client.put(
        "/v1/webhooks", content=body, headers={**headers, **JSON_HEADERS}
    )
    assert_answered(response)
    if response.status_code in (200, 201):
        got = await api.client.get("/v1/webhooks", headers=headers)
        assert got.status_code == 200, got.text
        assert got.json()["url"] == response.json()["url"]


@settings(FUZZ, max_examples=80)
@given(
    call_id=st.none() | st.text(max_size=80) | st.uuids().map(str),
    upper=st.booleans(),
    body=st.none() | encoded(json_values),
)
@example(call_id="x" * 10_000, upper=False, body=None)
@example(call_id=str(uuid.uuid4()), upper=True, body=b"{}")
@example(call_id=None, upper=True, body=b'{"x": NaN}')
async def test_cancel_with_any_id_never_fails(
    api: Api, call_id: str | None, upper: bool, body: bytes | None
) -> None:
    """Any id, or (None) the id of the tenant's own queued call, in either letter case."""
    headers = await api.tenant_headers()
    own = call_id is None
    if own:
        created = await api.client.post(
            "/v1/calls", json={"phone": "+996700000000", "agent": "altai"}, headers=headers
        )
        assert created.status_code == 201
        call_id = created.json()["call_id"]
    assert call_id is not None
    response = await api.client.post(
        f"/v1/calls/{quote(call_id.upper() if upper else call_id, safe='')}/cancel",
        content=body,
        headers={**headers, **JSON_HEADERS},
    )
    assert_answered(response)
    if own:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceled"
    else:
        assert response.status_code == 404, response.text  # no call of this tenant


LIST_PARAMETERS = ["limit", "cursor", "status", "agent", "created_after", "created_before"]
query_keys = st.sampled_from(LIST_PARAMETERS) | st.text(max_size=10)
query_values = (
    st.sampled_from(["1", "100", "0", "queued", "2026-01-01T00:00:00Z", "altynai", "-1"])
    | st.text(max_size=40)
    | st.integers().map(str)
)
# Raw percent-encoded bytes: invalid UTF-8 and NUL included.
raw_queries = st.lists(
    st.tuples(query_keys.map(quote), st.binary(max_size=30).map(quote_from_bytes)), max_size=4
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@settings(FUZZ, max_examples=120)
@given(
    path=st.sampled_from(["/v1/calls", "/v1/webhook-deliveries"]),
    params=st.dictionaries(query_keys, query_values, max_size=4),
    raw_query=st.none() | raw_queries,
)
@example(path="/v1/calls", params={"agent": "a" * 10_000}, raw_query=None)
@example(path="/v1/calls", params={}, raw_query="agent=%ED%A0%80&status=%FF")
@example(path="/v1/calls", params={"created_after": "9" * 5000}, raw_query=None)
async def test_listing_with_any_query_never_fails(
    api: Api, path: str, params: dict[str, str], raw_query: str | None
) -> None:
    headers = await api.tenant_headers()
    # A call of this tenant, so filters run over a stored record too.
    created = await api.client.post(
        "/v1/calls",
        json={"phone": "+996700000000", "agent": "altynai", "variables": {"n": 1}},
        headers=headers,
    )
    assert created.status_code == 201
    url = f"{path}?{raw_query}" if raw_query is not None else path
    response = await api.client.get(url, params=params or None, headers=headers)
    assert_answered(response)
    assert response.status_code in (200, 400, 422), response.text
