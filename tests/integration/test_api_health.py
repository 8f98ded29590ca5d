"""/healthz and /readyz: alive always; ready only with a reachable store and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard_api.app import create_app
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.http.ops import Readiness
from switchboard_shared.ports import Store, StoreError
from switchboard_testing.servers import serving
from tests.support.api_client import ApiHarness, running_api


class UnreachableStore:
    """A real store whose `ping` fails, as when the database is down."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    async def ping(self) -> None:
        raise StoreError("connection refused")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-health"))) as harness:
        yield harness


async def test_alive_and_ready(api: ApiHarness) -> None:
    client = api.client()
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


async def test_not_ready_names_the_store(api: ApiHarness, tmp_path: Path) -> None:
    async with running_api(tmp_path, store=UnreachableStore(api.store), bus=api.bus) as down:  # type: ignore[arg-type]
        client = down.client()
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["store"] != "ok"
    assert body["error"]["code"] == "not_ready"
    assert "store" in body["error"]["message"]
    assert "connection refused" not in response.text  # details stay in the log


async def test_not_ready_names_the_broker(api: ApiHarness, tmp_path: Path) -> None:
    closed = InProcessBus()
    await closed.close()
    async with running_api(tmp_path, store=api.store, bus=closed) as down:
        response = await down.client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == "ok"
    assert response.json()["checks"]["broker"] != "ok"


async def test_a_draining_process_reports_not_ready(api: ApiHarness) -> None:
    readiness = Readiness({"store": api.store.ping})
    app = create_app(settings=api.settings, store=api.store, bus=api.bus, readiness=readiness)
    async with serving(app) as base_url:
        client = api.client()
        assert (await client.get(f"{base_url}/readyz")).status_code == 200
        readiness.draining = True
        assert (await client.get(f"{base_url}/readyz")).status_code == 503
