"""Tracing: one trace follows a call from the API through the bus, the dialer, the
provider, the provider's callback and the notifier to the customer's webhook.

The system runs like the all-in-one (every service and the simulator on one port, a
SQLite store, the in-process bus) through `runtime.serve`, with spans going to an
in-memory exporter. The simulator is wrapped so it sends no trace headers, like a real
provider: its callbacks can rejoin the call's trace only through `Call.trace_context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Receive, Scope, Send

from switchboard.runner import SIM_MOUNT_PATH, all_in_one_settings
from switchboard_api import service as api_service
from switchboard_dialer import service as dialer_service
from switchboard_dialer.dialing import QUEUE as DIALER_QUEUE
from switchboard_ingest import service as ingest_service
from switchboard_notifier import service as notifier_service
from switchboard_notifier.handler import QUEUE as NOTIFIER_QUEUE
from switchboard_provider_sim import service as sim_service
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.providers import build_providers
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.http.ops import Readiness
from switchboard_shared.observability import tracing as telemetry
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.process import ServiceParts, serve
from switchboard_shared.runtime.settings import Settings
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.support.api_client import AGENTS_FILE, create_tenant_with_key
from tests.support.net import eventually

PHONE = "+996700000000"  # not a simulator test number: the call completes


@dataclass
class Receiver:
    """A loopback HTTP server that answers 200 and keeps every request."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], headers, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test only: its spans, then the exporter detached."""
    spans = InMemorySpanExporter()
    yield spans
    telemetry.shutdown_tracing()


TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def _provider_without_trace_headers(app: ASGIApp) -> ASGIApp:
    """The simulator as a real provider: it ignores the caller's trace headers and runs
    outside the caller's trace, so its callbacks cannot carry the call's context."""

    async def untraced(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in TRACE_HEADERS]
            scope = {**scope, "headers": headers}
        token = otel_context.attach(otel_context.Context())
        try:
            await app(scope, receive, send)
        finally:
            otel_context.detach(token)

    return untraced


@contextlib.asynccontextmanager
async def running_system(tmp_path: Path) -> AsyncIterator[tuple[Settings, Components]]:
    """Every service and the simulator in one process, served by `runtime.serve`."""
    port = free_port()
    settings = all_in_one_settings(
        Settings(
            port=port,
            sqlite_path=tmp_path / "switchboard.db",
            broker_url=None,
            mongodb_url=None,
            agents_file=AGENTS_FILE,
            sim_ring_delay_seconds=0.05,
            sim_answer_delay_seconds=0.05,
            sim_talk_seconds=0.1,
            outbox_min_age_seconds=60,  # the relay must not publish outside the request
        )
    )
    components = Components(
        settings=settings,
        store=SqliteStore(settings.effective_sqlite_path),
        bus=InProcessBus(close_timeout=2),
        providers=build_providers(settings),
    )
    sim = sim_service.parts(settings, mount_path=SIM_MOUNT_PATH)
    sim.mounts = {path: _provider_without_trace_headers(app) for path, app in sim.mounts.items()}
    parts: list[ServiceParts] = [
        api_service.parts(components),
        ingest_service.parts(components),
        dialer_service.parts(components),
        notifier_service.parts(components),
        sim,
    ]
    readiness = Readiness({"store": components.store.ping, "broker": components.bus.ping})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, components, parts, readiness, stop=stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                if task.done():
                    task.result()  # surfaces a start-up failure
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=20)
        yield settings, components
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # `serve` took them over
            loop.remove_signal_handler(sig)


def _one(spans: list[ReadableSpan], what: str, match: Callable[[ReadableSpan], bool]) -> Any:
    found = [s for s in spans if match(s)]
    assert len(found) == 1, f"{what}: {len(found)} spans in {[s.name for s in spans]}"
    return found[0]


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _consumer(queue: str, event_type: str) -> Callable[[ReadableSpan], bool]:
    return lambda s: (
        s.kind is SpanKind.CONSUMER
        and s.name == f"process {event_type}"
        and (s.attributes or {}).get("messaging.destination.name") == queue
    )


async def test_one_trace_follows_a_call_from_the_api_to_the_customer_webhook(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    receiver = Receiver()
    assert telemetry.configure_tracing(Settings(), "all", exporter=exporter)
    async with (
        serving(receiver) as receiver_url,
        running_system(tmp_path) as (settings, components),
    ):
        _, key = await create_tenant_with_key(components.store)
        api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        async with api:
            hook = await api.put(
                "/v1/webhooks", json={"url": f"{receiver_url}/hooks", "events": ["call.completed"]}
            )
            assert hook.status_code == 201, hook.text
            created = await api.post("/v1/calls", json={"phone": PHONE, "agent": "altynai"})
            assert created.status_code == 201, created.text
            call_id = created.json()["call_id"]

            async def completed_webhook() -> tuple[str, dict[str, str], bytes] | None:
                return next((r for r in receiver.requests if b"call.completed" in r[2]), None)

            _, webhook_headers, _ = await eventually(completed_webhook, within=30)
            stored = await components.store.get_call(call_id)

    spans = list(exporter.get_finished_spans())
    request = _one(
        spans,
        "API request",
        # The simulator has a `POST /v1/calls` too: the API's is traced by our middleware.
        lambda s: (
            s.kind is SpanKind.SERVER
            and s.name == "POST /v1/calls"
            and s.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
        ),
    )
    trace_id = request.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]

    # The call stored the context of the request that created it.
    assert stored is not None
    assert stored.trace_context["traceparent"].split("-")[1] == f"{trace_id:032x}"

    # api → bus → dialer → provider.
    _one(in_trace, "call.requested publish", lambda s: s.name == "publish call.requested")
    dial = _one(in_trace, "dialer consumer", _consumer(DIALER_QUEUE, "call.requested"))
    provider_request = _one(
        in_trace,
        "provider request",
        lambda s: s.kind is SpanKind.CLIENT and _parent(s) == dial.context.span_id,
    )
    attributes = provider_request.attributes or {}
    assert SIM_MOUNT_PATH in str(attributes.get("url.full") or attributes.get("http.url"))

    # The provider's callbacks carry no trace context: their HTTP requests start traces
    # of their own, and ingest rejoins the call's through `Call.trace_context`.
    callback_requests = [
        s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("POST /v1/webhooks/")
    ]
    assert callback_requests
    assert all(s.context.trace_id != trace_id for s in callback_requests)
    applied = _one(
        in_trace,
        "ingest callback handling",
        lambda s: (
            s.name == "apply provider callback"
            and (s.attributes or {}).get("switchboard.status") == "completed"
        ),
    )
    assert _parent(applied) == request.context.span_id
    assert (applied.attributes or {}).get("switchboard.call_id") == call_id

    # ingest → bus → notifier → the customer.
    publish = _one(in_trace, "call.completed publish", lambda s: s.name == "publish call.completed")
    assert _parent(publish) == applied.context.span_id
    notify = _one(in_trace, "notifier consumer", _consumer(NOTIFIER_QUEUE, "call.completed"))
    assert _parent(notify) == publish.context.span_id
    post = _one(
        in_trace,
        "webhook request",
        lambda s: s.kind is SpanKind.CLIENT and _parent(s) == notify.context.span_id,
    )
    _, traceparent_trace, traceparent_span, _ = webhook_headers["traceparent"].split("-")
    assert (traceparent_trace, traceparent_span) == (
        f"{trace_id:032x}",
        f"{post.context.span_id:016x}",
    )

    service_name = request.resource.attributes["service.name"]
    assert str(service_name).startswith(f"{settings.service_name_prefix}-")
    # Probes are not traced.
    assert not [s for s in spans if s.name.endswith(("/readyz", "/healthz", "/metrics"))]


async def test_configuring_again_attaches_an_exporter_once(
    exporter: InMemorySpanExporter,
) -> None:
    assert telemetry.configure_tracing(Settings(), "api", exporter=exporter)
    assert telemetry.configure_tracing(Settings(), "api", exporter=exporter)
    with trace.get_tracer(__name__).start_as_current_span("once"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["once"]

    telemetry.shutdown_tracing()
    assert not telemetry.tracing_enabled()
    with trace.get_tracer(__name__).start_as_current_span("after shutdown"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["once"]
    # Off, apps are left alone; turned on again, they get server spans.
    untraced = FastAPI()
    telemetry.instrument_app(untraced, Settings())
    assert not getattr(untraced, "_is_instrumented_by_opentelemetry", False)
    assert telemetry.configure_tracing(Settings(), "api", exporter=exporter)
    traced = FastAPI()
    telemetry.instrument_app(traced, Settings())
    telemetry.instrument_app(traced, Settings())  # a second call changes nothing
    assert getattr(traced, "_is_instrumented_by_opentelemetry", False)


async def test_tracing_is_off_without_an_otlp_endpoint() -> None:
    telemetry.shutdown_tracing()
    assert not telemetry.configure_tracing(Settings(otlp_endpoint=None), "api")
    assert not telemetry.tracing_enabled()


async def test_spans_are_exported_over_otlp_http() -> None:
    collector = Receiver()
    async with serving(collector) as collector_url:
        settings = Settings(otlp_endpoint=collector_url + "/")
        try:
            assert telemetry.configure_tracing(settings, "dialer")
            with trace.get_tracer(__name__).start_as_current_span("exported over OTLP"):
                pass
        finally:
            # Flushing posts to the collector served by this loop: not from the loop.
            await asyncio.to_thread(telemetry.shutdown_tracing)

    assert collector.requests, "nothing reached the collector"
    path, headers, body = collector.requests[0]
    assert path == "/v1/traces"
    assert headers["content-type"] == "application/x-protobuf"
    export = ExportTraceServiceRequest.FromString(body)
    names = [
        span.name
        for resource_spans in export.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert "exported over OTLP" in names
    resource = {a.key: a.value.string_value for a in export.resource_spans[0].resource.attributes}
    assert resource["service.name"].startswith(f"{settings.service_name_prefix}-")
