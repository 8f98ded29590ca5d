"""Every error path answers `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard_api.app import create_app
from switchboard_shared.ports import Store
from tests.support.api_client import ApiHarness, create_tenant_with_key, running_api

CALL = {"phone": "+996700000000", "agent": "altynai"}
SECRET = "password=hunter2"


class FailingStore:
    """A real store whose named methods raise an unexpected error, as a broken driver."""

    def __init__(self, inner: Store, failing: set[str]) -> None:
        self._inner = inner
        self._failing = failing

    def __getattr__(self, name: str) -> Any:
        if name in self._failing:

            async def fail(*_: Any, **__: Any) -> Any:
                raise RuntimeError(f"driver exploded at {name}: {SECRET}")

            return fail
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-errors"))) as harness:
        yield harness


def assert_error_shape(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert "detail" not in response.text
    return str(body["error"]["message"])


async def test_401(api: ApiHarness) -> None:
    assert_error_shape(await api.client().get("/v1/calls"), 401, "unauthorized")
    assert_error_shape(await api.client("sk_wrong").get("/v1/usage"), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/calls/x/y/z", "/v2/calls"])
async def test_404_unknown_route(api: ApiHarness, path: str) -> None:
    _, client = await api.tenant()
    message = assert_error_shape(await client.get(path), 404, "not_found")
    assert path in message


async def test_404_call(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.get(f"/v1/calls/{uuid.uuid4()}")
    assert_error_shape(response, 404, "call_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/calls"),
        ("PUT", "/v1/agents"),
        ("POST", "/v1/usage"),
        ("GET", "/v1/calls/00000000-0000-4000-8000-000000000000/cancel"),
        ("PATCH", "/v1/calls/00000000-0000-4000-8000-000000000000"),
    ],
)
async def test_405(api: ApiHarness, method: str, path: str) -> None:
    _, client = await api.tenant()
    response = await client.request(method, path)
    assert_error_shape(response, 405, "method_not_allowed")
    assert response.headers.get("allow")


async def test_409(api: ApiHarness) -> None:
    _, client = await api.tenant()
    call_id = (await client.post("/v1/calls", json=CALL)).json()["call_id"]
    await client.post(f"/v1/calls/{call_id}/cancel")
    assert_error_shape(await client.post(f"/v1/calls/{call_id}/cancel"), 409, "call_not_cancelable")


async def test_413_by_declared_length(api: ApiHarness) -> None:
    _, client = await api.tenant()
    limit = api.settings.max_body_bytes
    body = {**CALL, "metadata": {"pad": "x" * limit}}
    message = assert_error_shape(
        await client.post("/v1/calls", json=body), 413, "payload_too_large"
    )
    assert str(limit) in message


async def test_413_by_actual_size_of_a_chunked_body(api: ApiHarness) -> None:
    _, client = await api.tenant()
    limit = api.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: only counting the received bytes can catch it.
        for _ in range(limit // 8192 + 2):
            yield b" " * 8192

    response = await client.post(
        "/v1/calls", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error_shape(response, 413, "payload_too_large")


async def test_a_body_right_at_the_limit_is_read(api: ApiHarness) -> None:
    _, client = await api.tenant()
    limit = api.settings.max_body_bytes
    # Valid JSON padded with spaces to exactly the limit: parsed, then refused on meaning.
    raw = b'{"phone": "x", "agent": "altynai"}'
    response = await client.post(
        "/v1/calls",
        content=raw + b" " * (limit - len(raw)),
        headers={"Content-Type": "application/json"},
    )
    assert_error_shape(response, 422, "invalid_phone")


async def test_413_comes_before_authentication(api: ApiHarness) -> None:
    big = b"{" + b" " * api.settings.max_body_bytes + b"}"
    response = await api.client().post(
        "/v1/calls", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error_shape(response, 413, "payload_too_large")


async def test_422(api: ApiHarness) -> None:
    _, client = await api.tenant()
    message = assert_error_shape(
        await client.post("/v1/calls", json={"phone": "+996700000000"}), 422, "validation_error"
    )
    assert "agent" in message
    assert_error_shape(
        await client.post("/v1/calls", json={**CALL, "phone": "123"}), 422, "invalid_phone"
    )
    assert_error_shape(await client.get("/v1/calls?limit=1000"), 422, "validation_error")


async def test_400(api: ApiHarness) -> None:
    _, client = await api.tenant()
    assert_error_shape(await client.get("/v1/calls?cursor=garbage"), 400, "invalid_cursor")


@pytest.mark.parametrize(
    ("failing", "method", "path", "body"),
    [
        ({"usage"}, "GET", "/v1/usage", None),
        ({"list_agents"}, "GET", "/v1/agents", None),
        ({"insert_call"}, "POST", "/v1/calls", CALL),
        ({"list_calls"}, "GET", "/v1/calls", None),
        ({"find_api_key"}, "GET", "/v1/agents", None),  # fails while authenticating
    ],
)
async def test_500_hides_the_failure_and_logs_it(
    api: ApiHarness,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failing: set[str],
    method: str,
    path: str,
    body: Any,
) -> None:
    broken = FailingStore(api.store, failing)
    _, client = await api.tenant()
    key = client.headers["authorization"].split(" ", 1)[1]
    with caplog.at_level(logging.ERROR):
        async with running_api(tmp_path, store=broken, bus=api.bus) as degraded:  # type: ignore[arg-type]
            response = await degraded.client(key).request(method, path, json=body)
    assert_error_shape(response, 500, "internal_error")
    for leak in ("Traceback", "RuntimeError", SECRET, "exploded", 'File "'):
        assert leak not in response.text
    logged = [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
    assert logged, "the failure was not logged with its exception"


# --- Allow headers, strict JSON, bounded messages ------------------------------------------


@pytest.fixture(scope="module")
async def full_api(api: ApiHarness) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API (every router, as `create_app` builds it), in-process."""
    app = create_app(settings=api.settings, store=api.store, bus=api.bus)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/webhooks", "GET, PUT, DELETE"),
        ("POST", "/v1/webhooks", "GET, PUT, DELETE"),
        ("DELETE", "/v1/calls", "GET, POST"),
        ("PUT", "/v1/calls", "GET, POST"),
        ("DELETE", "/v1/calls/00000000-0000-4000-8000-000000000000", "GET"),
        ("GET", "/v1/calls/00000000-0000-4000-8000-000000000000/cancel", "POST"),
        ("GET", "/v1/webhooks/rotate-secret", "POST"),
        ("PUT", "/v1/agents", "GET"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    full_api: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await full_api.request(method, path)
    assert_error_shape(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/calls", b'{"phone": "\xff", "agent": "altynai"}'),
        ("PUT", "/v1/webhooks", b'{"url": "https://example.com/\xc3\x28"}'),
        ("POST", "/v1/calls", b'{"phone": "+996700000000", "agent": ' + b"1" * 5000 + b"}"),
        ("POST", "/v1/calls", b'{"phone": "+996700000000", "agent": NaN}'),
        ("PUT", "/v1/webhooks", b'{"url": "https://example.com/", "events": [Infinity]}'),
        ("PUT", "/v1/webhooks", b'{"url": "https://example.com/\\udc00"}'),
        ("POST", "/v1/calls", b"[" * 2000 + b"]" * 2000),
        ("POST", "/v1/calls", b'{"phone": '),
    ],
)
async def test_bodies_that_are_not_strict_json_are_422_on_every_route(
    full_api: httpx.AsyncClient, api: ApiHarness, method: str, path: str, body: bytes
) -> None:
    # Invalid UTF-8 and 5,000-digit numbers were a 400 `bad_request`, a code the error
    # table does not list; NaN was accepted, a lone surrogate a 500.
    _, raw_key = await create_tenant_with_key(api.store)
    response = await full_api.request(
        method,
        path,
        content=body,
        headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
    )
    message = assert_error_shape(response, 422, "validation_error")
    assert message.startswith("the request body is not valid JSON")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/calls", {**CALL, "agent": "k" * 60_000}),
        ("POST", "/v1/calls", {**CALL, "f" * 60_000: 1}),
        ("POST", "/v1/calls", {**CALL, "metadata": {"k" * 3000: {"j" * 3000: 2**70}}}),
        ("POST", "/v1/calls", {**CALL, "webhook_url": "https://" + "h" * 60_000}),
        ("PUT", "/v1/webhooks", {"url": "https://" + "h" * 60_000}),
        ("PUT", "/v1/webhooks", {"url": "https://example.com", "events": ["e" * 60_000] * 5}),
        ("GET", "/v1/calls/" + "x" * 8000, None),
        ("GET", "/v1/webhook-deliveries/" + "x" * 8000, None),
        ("GET", "/v1/" + "x" * 8000, None),
    ],
)
async def test_errors_never_echo_a_large_input(
    full_api: httpx.AsyncClient, api: ApiHarness, method: str, path: str, body: Any
) -> None:
    _, raw_key = await create_tenant_with_key(api.store)
    response = await full_api.request(
        method, path, json=body, headers={"Authorization": f"Bearer {raw_key}"}
    )
    assert 400 <= response.status_code < 500, response.text[:500]
    assert_error_shape(response, response.status_code, response.json()["error"]["code"])
    assert len(response.content) < 2048, len(response.content)
