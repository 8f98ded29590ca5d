"""GET and PUT /v1/config over HTTP: defaults, partial updates, validation, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard_shared.domain.webhooks import WebhookEndpoint
from tests.support.api_client import ApiHarness, running_api

DEFAULTS = {
    "tier": "basic",
    "prompt": "You are a helpful, friendly voice assistant. Keep answers short.",
    "language": "en",
    "max_duration": 300,
    "webhook_url": None,
}


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-config"))) as harness:
        yield harness


async def test_a_new_tenant_gets_the_defaults(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.get("/v1/config")
    assert response.status_code == 200
    assert response.json() == DEFAULTS


async def test_put_changes_a_subset_and_returns_the_whole_config(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.put("/v1/config", json={"tier": "advanced", "max_duration": 600})
    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "tier": "advanced", "max_duration": 600}
    again = await client.put("/v1/config", json={"language": "ky", "prompt": "Сүйлөшөлү."})
    expected = {**DEFAULTS, "tier": "advanced", "max_duration": 600, "language": "ky"}
    assert again.json() == {**expected, "prompt": "Сүйлөшөлү."}
    assert (await client.get("/v1/config")).json() == again.json()
    assert (await client.put("/v1/config", json={})).json() == again.json()


async def test_one_tenants_config_is_not_anothers(api: ApiHarness) -> None:
    _, first = await api.tenant()
    _, second = await api.tenant()
    await first.put("/v1/config", json={"language": "fr"})
    assert (await second.get("/v1/config")).json()["language"] == "en"


async def test_webhook_url_mirrors_the_tenants_endpoint(api: ApiHarness) -> None:
    tenant, client = await api.tenant()
    url = "https://hooks.example.com/switchboard"
    endpoint = WebhookEndpoint(tenant_id=tenant.tenant_id, url=url, secret="whsec_test")
    await api.store.put_webhook_endpoint(endpoint)
    assert (await client.get("/v1/config")).json()["webhook_url"] == url
    refused = await client.put("/v1/config", json={"webhook_url": "https://x.example"})
    assert refused.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_duration": 9}, "max_duration"),
        ({"max_duration": 3601}, "max_duration"),
        ({"max_duration": "60"}, "max_duration"),
        ({"max_duration": 60.5}, "max_duration"),
        ({"tier": "premium"}, "tier"),
        ({"tier": None}, "tier"),
        ({"prompt": "é" * 4097}, "prompt"),
        ({"language": "xx"}, "language"),
        ({"language": "EN"}, "language"),
        ({"language": "eng"}, "language"),
        ({"voice": "alloy"}, "voice"),
    ],
)
async def test_bad_values_are_refused_and_change_nothing(
    api: ApiHarness, body: dict[str, Any], field: str
) -> None:
    _, client = await api.tenant()
    response = await client.put("/v1/config", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert (await client.get("/v1/config")).json() == DEFAULTS


async def test_a_prompt_of_exactly_8_kib_is_accepted(api: ApiHarness) -> None:
    _, client = await api.tenant()
    response = await client.put("/v1/config", json={"prompt": "é" * 4096})
    assert response.status_code == 200


async def test_config_needs_an_api_key(api: ApiHarness) -> None:
    assert (await api.client().get("/v1/config")).status_code == 401
    assert (await api.client().put("/v1/config", json={})).status_code == 401
