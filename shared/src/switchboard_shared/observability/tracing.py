"""OpenTelemetry tracing: off unless SWITCHBOARD_OTLP_ENDPOINT is set.

OpenTelemetry allows one global TracerProvider per process and refuses to replace it.
So the first `configure_tracing` installs Switchboard's provider, and every call
(the first included) attaches an exporter to it, once per endpoint or exporter.
`shutdown_tracing` flushes and detaches the exporters and turns the client
instrumentations off; a later `configure_tracing` turns them on again. Tests rely on
that: each attaches its own in-memory exporter and detaches it afterwards.

What carries the trace from hop to hop: FastAPI server spans continue an incoming
`traceparent`; httpx client spans send one (to providers and customer webhooks); the
bus adapters put it in message headers (`adapters.bus.common.publish_span`); provider callbacks
carry none, so webhook-ingest continues the context stored on the call at creation.
FastAPI itself also traces every app once a provider is installed, except apps this
module instrumented: a FastAPI app mounted under another (the simulator under /sim)
gets server spans of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]  # not re-exported as mypy sees it (no py.typed)
    BaseInstrumentor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

# Regexes on the request URL (path included, query excluded): probes and scrapes are
# frequent and tell nothing about a call.
EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"


class _AttachedProcessors(SpanProcessor):
    """Switchboard's span processors, one per exporter. Unlike the SDK's own
    multi-processor, processors can be detached again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processors: dict[Hashable, SpanProcessor] = {}

    def attach(self, key: Hashable, build: Callable[[], SpanProcessor]) -> None:
        with self._lock:
            if key not in self._processors:
                self._processors[key] = build()

    def detach_all(self) -> None:
        with self._lock:
            processors, self._processors = list(self._processors.values()), {}
        for processor in processors:
            processor.shutdown()  # a batch processor exports what it holds first

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in tuple(self._processors.values()):
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in tuple(self._processors.values()):
            processor.on_end(span)

    def shutdown(self) -> None:
        self.detach_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in tuple(self._processors.values()))


@dataclass
class _Tracing:
    processors: _AttachedProcessors
    on: bool = False


_lock = threading.Lock()
_tracing: _Tracing | None = None


def configure_tracing(
    settings: Settings, service: str, exporter: SpanExporter | None = None
) -> bool:
    """Turn tracing on for this process and instrument httpx and PyMongo; returns
    whether tracing is on.

    On when SWITCHBOARD_OTLP_ENDPOINT is set (spans are batched to
    `<endpoint>/v1/traces`), or when `exporter` is given: then spans go to it instead,
    one by one as they end (tests pass an InMemorySpanExporter). Safe to call again: the
    provider, its `service.name` resource (`<prefix>-<service>` of the first call) and
    the instrumentations are set up once; an endpoint or exporter is attached once.
    """
    if exporter is None and not settings.otlp_endpoint:
        return tracing_enabled()
    global _tracing
    with _lock:
        if _tracing is None:
            _tracing = _install_provider(f"{settings.service_name_prefix}-{service}")
            if _tracing is None:
                return False
        if exporter is not None:
            _tracing.processors.attach(exporter, lambda: SimpleSpanProcessor(exporter))
        else:
            endpoint = str(settings.otlp_endpoint).rstrip("/") + "/v1/traces"
            _tracing.processors.attach(endpoint, lambda: _otlp_processor(endpoint))
        _instrument_clients()
        _tracing.on = True
    return True


def tracing_enabled() -> bool:
    """Whether `configure_tracing` turned tracing on in this process (and
    `shutdown_tracing` did not turn it off since)."""
    return _tracing is not None and _tracing.on


def shutdown_tracing() -> None:
    """Export what is buffered, detach every exporter and turn the httpx and PyMongo
    instrumentations off. The provider stays installed (OpenTelemetry cannot replace it);
    spans made from now on go nowhere until `configure_tracing` runs again."""
    with _lock:
        if _tracing is None or not _tracing.on:
            return
        _tracing.on = False
        _tracing.processors.detach_all()
        for instrumentor in _client_instrumentors():
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


def instrument_app(app: FastAPI, settings: Settings) -> None:
    """Give each request to `app` a server span (continuing the caller's `traceparent`),
    except /healthz, /readyz and /metrics. Does nothing unless tracing is on in this
    process or SWITCHBOARD_OTLP_ENDPOINT is set; an app is instrumented once."""
    if not (tracing_enabled() or settings.otlp_endpoint):
        return
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # The global provider: a proxy until `configure_tracing` installs the real one.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def _install_provider(service_name: str) -> _Tracing | None:
    processors = _AttachedProcessors()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Someone installed an SDK provider first (e.g. `opentelemetry-instrument`):
        # share it rather than be refused.
        current.add_span_processor(processors)
        return _Tracing(processors)
    if not isinstance(current, trace.ProxyTracerProvider):
        log.warning("tracing stays off: a %s is already installed", type(current).__name__)
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processors)
    trace.set_tracer_provider(provider)
    return _Tracing(processors)


def _otlp_processor(endpoint: str) -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


def _client_instrumentors() -> list[BaseInstrumentor]:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    # Instrumentors are singletons: these are the ones instrumented before, if any.
    instrumentors: list[BaseInstrumentor] = [HTTPXClientInstrumentor()]
    try:  # only services with a store install the `mongodb` extra (the simulator does not)
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    except ImportError:
        return instrumentors
    return [*instrumentors, PymongoInstrumentor()]


def _instrument_clients() -> None:
    # httpx is patched at its transport class, so clients made earlier are traced too;
    # PyMongo's listeners reach clients made afterwards (`run_process` configures
    # tracing before it builds the store).
    for instrumentor in _client_instrumentors():
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
