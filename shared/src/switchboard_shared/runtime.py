"""How every Switchboard process runs: the same start-up and the same drain on SIGTERM.

A service contributes `ServiceParts` (HTTP routes and background workers); `serve` puts
them on one HTTP server next to `/healthz`, `/readyz` and `/metrics`, starts the workers,
and on SIGTERM or SIGINT shuts down in this order:

1. readiness turns false, so load balancers stop sending new work;
2. workers stop taking work (consumers stop fetching, loops stop);
3. the HTTP server finishes the requests it has and closes;
4. the bus waits for in-flight handlers (their messages are acked, or go back to the
   queue), then the store and providers close; the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from switchboard_shared.bootstrap import Components
from switchboard_shared.http_errors import install_error_handlers
from switchboard_shared.logs import configure_logging, with_call_scope
from switchboard_shared.ops_http import Readiness, ops_router
from switchboard_shared.periodic import PeriodicTask
from switchboard_shared.ports import Subscription
from switchboard_shared.settings import Settings
from switchboard_shared.telemetry import configure_tracing, instrument_app

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """Background work besides HTTP: started after the components, stopped on SIGTERM."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


def consumer(components: Components, subscription: Subscription) -> Worker:
    # The handler's log lines carry the call_id of the message it handles.
    subscription = replace(subscription, handler=with_call_scope(subscription.handler))

    async def start() -> None:
        await components.bus.subscribe(subscription)

    return Worker(f"consumer {subscription.queue}", start, components.bus.stop_consuming)


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
    mounts: dict[str, ASGIApp] = field(default_factory=dict)
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
    if not any(getattr(route, "path", None) == "/readyz" for route in app.routes):
        app.include_router(ops_router())
    for part in parts:
        for router in part.routers:
            app.include_router(router)
        for path, sub_app in part.mounts.items():
            app.mount(path, sub_app)
    instrument_app(app, settings)
    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # `serve` owns SIGTERM/SIGINT: uvicorn would re-raise them at exit (exit code 143).
        yield


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

    `components` is None for a process with no state and no bus (the simulator).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    app = assemble_app(parts, readiness, title, settings)
    if components is not None:
        await components.start()
    started: list[Worker] = []
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=30,
        )
    )
    server_task: asyncio.Task[None] | None = None
    try:
        for worker in (w for p in parts for w in p.workers):
            await worker.start()
            started.append(worker)
        server_task = asyncio.create_task(server.serve(), name="http")
        stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if server_task in done:
            server_task.result()  # surfaces a failed bind
            raise RuntimeError("the HTTP server stopped on its own")
        log.info("stop signal received: draining")
    finally:
        readiness.draining = True
        for worker in reversed(started):
            try:
                await worker.stop()
            except Exception:
                log.exception("worker %s did not stop cleanly", worker.name)
        if server_task is not None and not server_task.done():
            server.should_exit = True
            await server_task
        if components is not None:
            await components.close()
        for close in (c for p in parts for c in p.closers):
            await close()
        log.info("stopped")


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
    asyncio.run(serve(settings, components, parts, readiness, title=f"Switchboard {service}"))


def run_stateless_process(service: str, parts: list[ServiceParts], settings: Settings) -> None:
    """Like `run_process`, for a process with no store and no bus."""
    configure_logging(settings, service)
    configure_tracing(settings, service)
    log.info("starting %s (%s) on %s:%s", service, settings.env, settings.host, settings.port)
    asyncio.run(serve(settings, None, parts, Readiness(), title=f"Switchboard {service}"))
