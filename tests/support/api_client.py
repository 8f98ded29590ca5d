"""The public API running for real: a SQLite store, an in-process bus, uvicorn on loopback,
and tenants with keys, each with an httpx client sending its Bearer key."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from switchboard_api.app import create_app
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.tenants import Tenant, new_api_key
from switchboard_shared.ports import Bus, Provider, Store
from switchboard_shared.runtime.operator import load_agents_file
from switchboard_shared.runtime.settings import Settings
from switchboard_testing.servers import serving
from tests.support.stores import open_store

AGENTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "agents.example.yaml"

# Besides the example agents: one disabled, one reserved for tenant "vip", and agents on
# the other providers, so leak checks see every provider name in the store.
EXTRA_AGENTS = [
    Agent(
        key="retired",
        name="Retired",
        provider="simulator",
        provider_agent_id="sim-agent-retired-77",
        from_number="+15005550077",
        enabled=False,
    ),
    Agent(
        key="vip-only",
        name="VIP",
        provider="vocode",
        provider_agent_id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
        from_number="+15005550088",
        tenants=["vip"],
    ),
    Agent(
        key="voxy",
        name="Voxy",
        provider="voxpria",
        provider_agent_id="agent_abc123",
        from_number="+15005550099",
    ),
    Agent(
        key="vappy",
        name="Vappy",
        provider="vapi",
        provider_agent_id="5b0a4a1e-vapi-assistant-0001",
        from_number="+15005550055",
    ),
    Agent(
        key="retta",
        name="Retta",
        provider="retell",
        provider_agent_id="oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
        from_number="+15005550066",
    ),
]


async def create_tenant_with_key(store: Store, name: str | None = None) -> tuple[Tenant, str]:
    """A new tenant (unique name unless given) and a raw API key for it."""
    tenant = await store.create_tenant(Tenant(name=name or f"tenant-{uuid.uuid4().hex[:10]}"))
    raw, key = new_api_key(tenant.tenant_id)
    await store.add_api_key(key)
    return tenant, raw


@dataclass
class ApiHarness:
    base_url: str
    store: Store
    bus: Bus
    settings: Settings
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        """A client of the running API; with `api_key`, every request carries it."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)
        self._clients.append(client)
        return client

    async def tenant(self, name: str | None = None) -> tuple[Tenant, httpx.AsyncClient]:
        """A new tenant and a client authenticated as it."""
        tenant, raw = await create_tenant_with_key(self.store, name)
        return tenant, self.client(raw)

    async def close_clients(self) -> None:
        for client in self._clients:
            await client.aclose()


@contextlib.asynccontextmanager
async def running_api(
    tmp_path: Path,
    *,
    settings: Settings | None = None,
    store: Store | None = None,
    bus: Bus | None = None,
    providers: Mapping[str, Provider] | None = None,
) -> AsyncIterator[ApiHarness]:
    """Serve `create_app` over a fresh SQLite store (agents loaded) and an in-process bus,
    unless `store` / `bus` are given (already started, and left open); `providers` are
    the adapters recordings come through (the caller closes them)."""
    settings = settings or Settings()
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_store("sqlite", tmp_path=tmp_path))
            await load_agents_file(store, AGENTS_FILE)
            for agent in EXTRA_AGENTS:
                await store.upsert_agent(agent)
        if bus is None:
            in_process = InProcessBus(close_timeout=2)
            await in_process.start()
            stack.push_async_callback(in_process.close)
            bus = in_process
        app = create_app(settings=settings, store=store, bus=bus, providers=providers)
        base_url = await stack.enter_async_context(serving(app))
        harness = ApiHarness(base_url=base_url, store=store, bus=bus, settings=settings)
        stack.push_async_callback(harness.close_clients)
        yield harness
