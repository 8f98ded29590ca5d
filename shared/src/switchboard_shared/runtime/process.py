"""How every Switchboard process runs: the same start-up and the same drain on SIGTERM.

A service contributes `ServiceParts` (HTTP routes and background workers); `serve` puts
them on one HTTP server next to `/healthz`, `/readyz` and `/metrics`, starts the workers,
and on SIGTERM or SIGINT (uvicorn takes them) shuts down in this order:

1. the HTTP server stops accepting connections and finishes the requests it has;
2. readiness turns false and workers stop taking work (consumers stop fetching, loops
   stop), in the app's lifespan shutdown;
3. the bus waits for in-flight handlers (their messages are acked, or go back to the
   queue), then the store and providers close; the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, cast

import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from switchboard_shared.http.admission import AdmissionLimit
from switchboard_shared.http.error_handling import install_error_handlers
from switchboard_shared.http.ops import Readiness, ReadinessDetail, ops_router
from switchboard_shared.observability.http_metrics import instrument_http_metrics
from switchboard_shared.observability.logs import configure_logging, with_call_scope
from switchboard_shared.observability.metrics import QUEUE_DEPTH
from switchboard_shared.observability.tracing import configure_tracing, instrument_app
from switchboard_shared.ports import PublishError, Subscription
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.periodic import PeriodicTask
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)
# How often a worker samples the depth of the queue it consumes (a passive declare).
QUEUE_DEPTH_INTERVAL_SECONDS = 10.0


@dataclass
class Worker:
    """Background work besides HTTP: started after the components, stopped on SIGTERM."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


def consumer(components: Components, subscription: Subscription) -> Worker:
    """Consumes `subscription`, and samples its queue's depth into
    `switchboard_queue_depth` while it does (what this worker sees waiting)."""
    # The handler's log lines carry the call_id of the message it handles.
    subscription = replace(subscription, handler=with_call_scope(subscription.handler))
    bus, queue = components.bus, subscription.queue

    async def sample_depth() -> None:
        try:
            QUEUE_DEPTH.labels(queue).set(await bus.queue_depth(queue))
        except PublishError:
            # Broker unreachable: no sample rather than a stale one (readiness says why).
            with contextlib.suppress(KeyError):
                QUEUE_DEPTH.remove(queue)

    sampler = PeriodicTask(f"depth {queue}", sample_depth, QUEUE_DEPTH_INTERVAL_SECONDS)

    async def start() -> None:
        await bus.subscribe(subscription)
        sampler.start()

    async def stop() -> None:
        await sampler.stop()
        await bus.stop_consuming()

    return Worker(f"consumer {queue}", start, stop)


def periodic(task: PeriodicTask) -> Worker:
    async def start() -> None:
        task.start()

    return Worker(task.name, start, task.stop)


@dataclass
class ServiceParts:
    """What one service adds to a process. `root_app` serves at `/` (the public API, or
    the simulator when it runs alone); `mounts` are sub-apps under a path prefix."""

    name: str
    root_app: FastAPI | None = None
    routers: list[APIRouter] = field(default_factory=list)
    # What the routers' dependencies read from `app.state` (see each service's deps.py).
    state: dict[str, object] = field(default_factory=dict)
    # Shown by `/readyz` without deciding readiness.
    readiness_details: dict[str, ReadinessDetail] = field(default_factory=dict)
    mounts: dict[str, ASGIApp] = field(default_factory=dict)
    # One-shot start-up steps (seeding, loading files): run after the components start
    # and before any worker; they leave nothing running, so there is nothing to stop.
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    # Run last, once in-flight handlers are done: clients the handlers use.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def assemble_app(
    parts: list[ServiceParts], readiness: Readiness, title: str, settings: Settings
) -> FastAPI:
    """One HTTP app carrying every part's routes plus the ops endpoints."""
    roots = [p.root_app for p in parts if p.root_app is not None]
    if len(roots) > 1:
        raise ValueError("at most one service may serve at the root path")
    if roots:
        app = roots[0]
    else:
        app = FastAPI(title=title, docs_url=None, redoc_url=None)
        install_error_handlers(app)
    # /readyz reports the process's readiness, draining flag included.
    app.state.readiness = readiness
    for part in parts:
        readiness.details.update(part.readiness_details)
    if not any(getattr(route, "path", None) == "/readyz" for route in app.routes):
        app.include_router(ops_router())
    for part in parts:
        for name, value in part.state.items():
            setattr(app.state, name, value)
        for router in part.routers:
            # Beside the public API (the all-in-one), other services' routes (provider
            # callbacks) are served but are not part of its OpenAPI contract.
            app.include_router(router, include_in_schema=not roots)
        for path, sub_app in part.mounts.items():
            app.mount(path, sub_app)
    instrument_app(app, settings)
    # An overloaded process answers before any other middleware's work...
    if not any(m.cls is cast(Any, AdmissionLimit) for m in app.user_middleware):
        app.add_middleware(
            AdmissionLimit,
            max_in_flight=settings.http_max_in_flight,
            retry_after_seconds=settings.http_retry_after_seconds,
        )
    # ...but for the request metrics, which wrap it: a shed request is an error too.
    instrument_http_metrics(app)
    return app


def server_config_options(keep_alive_seconds: float = 75) -> dict[str, Any]:
    """The uvicorn options of every Switchboard HTTP server (and of the benchmark's bare
    anchor, so both run the same server stack): uvloop and httptools when installed."""
    return {
        "log_config": None,  # our JSON logging, configured once per process
        "access_log": False,
        "loop": "auto",
        "http": "auto",
        "timeout_keep_alive": keep_alive_seconds,
    }


async def serve(
    settings: Settings,
    components: Components | None,
    parts: list[ServiceParts],
    readiness: Readiness,
    *,
    title: str = "Switchboard",
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then drain and return.

    uvicorn owns the signals: on one it stops accepting connections and finishes the
    requests it has; then the app's lifespan ends, which drains the rest (`_running`).
    `components` is None for a process with no state and no bus (the simulator).
    """
    app = assemble_app(parts, readiness, title, settings)
    _run_in_lifespan(app, _running(components, parts, readiness))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            timeout_graceful_shutdown=30,
            **server_config_options(settings.http_keep_alive_seconds),
        )
    )
    stop_watch = asyncio.create_task(_exit_when_set(stop, server)) if stop else None
    try:
        with _drained_signals_end_here():
            await server.serve()
    finally:
        if stop_watch is not None:
            stop_watch.cancel()
    if not server.started:
        raise RuntimeError(f"{title} did not start (see the log above)")
    log.info("stopped")


@contextlib.asynccontextmanager
async def _running(
    components: Components | None, parts: list[ServiceParts], readiness: Readiness
) -> AsyncIterator[None]:
    """Start-up before the server listens; the drain after it has closed."""
    if components is not None:
        await components.start()
    started: list[Worker] = []
    try:
        for step in (s for p in parts for s in p.startup):
            await step()
        for worker in (w for p in parts for w in p.workers):
            await worker.start()
            started.append(worker)
        yield
        log.info("stop signal received: draining")
    finally:
        readiness.draining = True
        for worker in reversed(started):
            try:
                await worker.stop()
            except Exception:
                log.exception("worker %s did not stop cleanly", worker.name)
        # The bus waits for in-flight handlers here, before the store closes under them.
        if components is not None:
            await components.close()
        for close in (c for p in parts for c in p.closers):
            await close()


def _run_in_lifespan(app: FastAPI, running: contextlib.AbstractAsyncContextManager[None]) -> None:
    """Wrap the app's own lifespan (the simulator has one) in `running`."""
    own = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(target: Any) -> AsyncIterator[Any]:
        async with running, own(target) as state:
            yield state

    app.router.lifespan_context = lifespan


async def _exit_when_set(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


@contextlib.contextmanager
def _drained_signals_end_here() -> Iterator[None]:
    """After a graceful stop uvicorn restores the handlers it found and raises the signal
    again to them; these handlers end it there, so a drained process exits 0, not 143."""
    if threading.current_thread() is not threading.main_thread():
        yield  # uvicorn takes no signals off the main thread either
        return
    previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drained(sig: int, _: FrameType | None) -> None:
    log.info("%s handled: the process drained", signal.Signals(sig).name)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a process's main coroutine on uvloop when it is installed (it is a dependency;
    bench/api.py measures the difference), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def run_process(
    service: str,
    build_parts: Callable[[Components], list[ServiceParts]],
    settings: Settings | None = None,
) -> None:
    """Entry point of `python -m switchboard_<service>` and `switchboard run <service>`."""
    settings = settings or Settings()
    configure_logging(settings, service)
    configure_tracing(settings, service)
    components = Components.from_settings(settings)
    readiness = Readiness.of(components.store, components.bus)
    parts = build_parts(components)
    log.info("starting %s (%s) on %s:%s", service, settings.env, settings.host, settings.port)
    run_event_loop(serve(settings, components, parts, readiness, title=f"Switchboard {service}"))


def run_stateless_process(service: str, parts: list[ServiceParts], settings: Settings) -> None:
    """Like `run_process`, for a process with no store and no bus."""
    configure_logging(settings, service)
    configure_tracing(settings, service)
    log.info("starting %s (%s) on %s:%s", service, settings.env, settings.host, settings.port)
    run_event_loop(serve(settings, None, parts, Readiness(), title=f"Switchboard {service}"))
