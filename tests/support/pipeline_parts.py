"""The call pipeline's parts running for real, for the dialer, watchdog, ingest and outbox
tests: a SQLite store with agents, an in-process bus with a log of every `call.*` event,
the provider simulator on loopback standing in for all three providers, the provider
adapters pointed at it and, optionally, the webhook-ingest routes receiving its callbacks.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from switchboard_ingest.callbacks import CallbackIngest
from switchboard_ingest.routes import router as ingest_router
from switchboard_provider_sim import create_app as create_simulator_app
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.providers import build_providers
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call
from switchboard_shared.http.error_handling import install_error_handlers
from switchboard_shared.ports import MessageContext, Provider, Store, Subscription
from switchboard_shared.runtime.settings import Settings
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.support.net import eventually
from tests.support.stores import open_store

API_KEYS = {
    "simulator": "sim-key",
    "vocode": "vocode-key",
    "voxpria": "voxpria-key",
    "vapi": "vapi-key",
    "retell": "retell-key",  # Retell also signs its webhooks with it
}
CALLBACK_SECRETS = {
    "simulator": "sim-callback-secret",
    "vocode": "vocode-callback-secret",
    "voxpria": "voxpria-callback-secret",
    "vapi": "vapi-server-secret",
    "retell": "retell-callback-secret",
}
NORMAL_NUMBER = "+14155550123"
AGENT_MAX_DURATION = 60

AGENTS = [
    Agent(
        key="sim-agent",
        name="Sim",
        provider="simulator",
        provider_agent_id="sim-agent-1",
        from_number="+15005550000",
        max_duration_seconds=AGENT_MAX_DURATION,
    ),
    Agent(
        key="vocode-agent",
        name="Vocode",
        provider="vocode",
        provider_agent_id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
        from_number="+15005550088",
        max_duration_seconds=AGENT_MAX_DURATION,
    ),
    Agent(
        key="voxpria-agent",
        name="Voxpria",
        provider="voxpria",
        provider_agent_id="agent_abc123",
        max_duration_seconds=AGENT_MAX_DURATION,
    ),
    Agent(
        key="vapi-agent",
        name="Vapi",
        provider="vapi",
        provider_agent_id="vapi-assistant-1",
        from_number="+15005550055",  # not sent: Vapi dials from its phoneNumberId setting
        max_duration_seconds=AGENT_MAX_DURATION,
    ),
    Agent(
        key="retell-agent",
        name="Retell",
        provider="retell",
        provider_agent_id="retell-agent-1",
        from_number="+15005550066",
        max_duration_seconds=AGENT_MAX_DURATION,
    ),
    Agent(
        key="retired",
        name="Retired",
        provider="simulator",
        provider_agent_id="sim-agent-retired",
        enabled=False,
    ),
]


def pipeline_settings(sim_url: str, callback_url: str, **overrides: Any) -> Settings:
    """Every provider served by the simulator at `sim_url`, callbacks to `callback_url`,
    simulator timelines and dial retries cut to fractions of a second."""

    def provider(name: str) -> dict[str, Any]:
        # A mapping, so each group validates into its own settings class.
        return {
            "base_url": sim_url,
            "api_key": API_KEYS[name],
            "callback_secret": CALLBACK_SECRETS[name],
            "from_number": "+15005550000",
            "timeout_seconds": 5,
        }

    values: dict[str, Any] = {
        "simulator": provider("simulator"),
        "vocode": provider("vocode"),
        "voxpria": provider("voxpria"),
        "vapi": provider("vapi"),
        "retell": provider("retell"),
        "callback_base_url": callback_url,
        "sim_ring_delay_seconds": 0.05,
        "sim_answer_delay_seconds": 0.05,
        "sim_talk_seconds": 0.1,
        "sim_slow_answer_seconds": 0.1,
        "dial_retry_delays": [0.05, 0.05, 0.05],
        **overrides,
    }
    return Settings(**values)


def message_context(attempt: int = 1, max_attempts: int = 4) -> MessageContext:
    """What the bus tells a handler about a first, fresh delivery."""
    return MessageContext(attempt=attempt, max_attempts=max_attempts, redelivered=False)


async def queued_call(
    store: Store, *, agent: str = "sim-agent", phone: str = NORMAL_NUMBER, **fields: Any
) -> Call:
    """A call as the API stores it on `POST /v1/calls`: queued, its call.requested pending."""
    call, created = await store.insert_call(
        Call(**{"tenant_id": "tenant-1", **fields}, agent=agent, phone=phone), 3600
    )
    assert created
    return call


# --- the bus, observed ----------------------------------------------------------------


@dataclass
class EventLog:
    """Every `call.*` event published on the bus, in arrival order."""

    events: list[Event] = field(default_factory=list)

    def subscription(self) -> Subscription:
        async def record(event: Event, _: MessageContext) -> None:
            self.events.append(event)

        return Subscription(
            queue=f"test-log-{uuid.uuid4().hex[:6]}", routing_keys=("call.*",), handler=record
        )

    def of(self, call_id: str, *types: EventType) -> list[Event]:
        """The call's events, only those of `types` when given."""
        return [e for e in self.events if e.call_id == call_id and (not types or e.type in types)]

    async def wait_for(
        self, call_id: str, event_type: EventType, within: float = 10.0
    ) -> list[Event]:
        """Waits until the call has an event of `event_type`; returns all of that type."""

        async def seen() -> list[Event]:
            return self.of(call_id, event_type)

        return await eventually(seen, within=within)


@contextlib.asynccontextmanager
async def observed_bus() -> AsyncIterator[tuple[InProcessBus, EventLog]]:
    """A started in-process bus with an EventLog already subscribed to `call.*`."""
    bus = InProcessBus(close_timeout=2)
    await bus.start()
    log = EventLog()
    await bus.subscribe(log.subscription())
    try:
        yield bus, log
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def store_with_agents(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path=tmp_path) as store:
        for agent in AGENTS:
            await store.upsert_agent(agent)
        yield store


# --- HTTP pieces ------------------------------------------------------------------------


@dataclass
class CallbackSink:
    """Takes the simulator's callbacks when nothing should act on them: 204 to each."""

    received: list[tuple[str, bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> Response:
            self.received.append(("/" + path, await request.body()))
            return Response(status_code=204)

        return app


def ingest_app(
    store: Store, bus: InProcessBus, providers: dict[str, Provider], settings: Settings
) -> FastAPI:
    """The webhook-ingest routes with the error shape, as the service serves them."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.ingest = CallbackIngest(store, bus, providers, settings)
    app.include_router(ingest_router)
    return app


@dataclass
class Pipeline:
    settings: Settings
    store: Store
    bus: InProcessBus
    events: EventLog
    providers: dict[str, Provider]
    sim_url: str
    # Where the simulator's callbacks go: the ingest routes, or a sink.
    callback_url: str

    async def sim_calls(self) -> list[dict[str, str]]:
        """Every call the simulator was asked to place (its `GET /_sim/calls` log)."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.sim_url}/_sim/calls")
        response.raise_for_status()
        data: list[dict[str, str]] = response.json()["data"]
        return data

    async def sim_call(self, provider_call_id: str) -> dict[str, str]:
        return next(c for c in await self.sim_calls() if c["id"] == provider_call_id)


@contextlib.asynccontextmanager
async def running_pipeline(
    tmp_path: Path, *, with_ingest: bool = False, **settings_overrides: Any
) -> AsyncIterator[Pipeline]:
    """Store, bus, simulator and provider adapters, started; closed afterwards.

    With `with_ingest`, the ingest routes are served and the simulator's callbacks move
    calls forward; otherwise they land in a sink and calls stay where the test put them.
    """
    async with contextlib.AsyncExitStack() as stack:
        callback_port, sim_port = free_port(), free_port()
        callback_url = f"http://127.0.0.1:{callback_port}"
        sim_url = f"http://127.0.0.1:{sim_port}"
        settings = pipeline_settings(sim_url, callback_url, **settings_overrides)
        store = await stack.enter_async_context(store_with_agents(tmp_path))
        providers = build_providers(settings)
        for provider in providers.values():
            stack.push_async_callback(provider.close)
        # Closed before the providers: in-flight handlers finish with working clients.
        bus, events = await stack.enter_async_context(observed_bus())
        receiver = (
            ingest_app(store, bus, providers, settings) if with_ingest else CallbackSink().app()
        )
        await stack.enter_async_context(serving(receiver, port=callback_port))
        await stack.enter_async_context(serving(create_simulator_app(settings), port=sim_port))
        yield Pipeline(settings, store, bus, events, providers, sim_url, callback_url)
