"""Per-route HTTP metrics: request counts by status and latency histograms, labelled by
the route template (`/v1/calls/{call_id}`, never a raw path with an id in it; a path
that matches no route, such as a 404 scan, is counted as `none`).

prometheus-fastapi-instrumentator resolves the template and times each request; it
feeds our own metric objects (`observability.metrics`), so a process that builds several
apps (tests do) registers them once and every app records into them.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

from switchboard_shared.observability.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

# Probes and scrapes: frequent, and they say nothing about the traffic.
EXCLUDED_ROUTES = ["^/healthz$", "^/readyz$", "^/metrics$"]


def _record(info: Info) -> None:
    route = info.modified_handler
    HTTP_REQUESTS.labels(route, info.method, info.modified_status).inc()
    HTTP_REQUEST_SECONDS.labels(route, info.method).observe(info.modified_duration)


def instrument_http_metrics(app: FastAPI) -> None:
    """Count and time every request `app` answers (once per app)."""
    if getattr(app.state, "http_metrics", False):
        return
    app.state.http_metrics = True
    instrumentator = Instrumentator(
        should_group_status_codes=False,  # 401 and 404 tell different stories
        should_group_untemplated=True,
        excluded_handlers=EXCLUDED_ROUTES,
    )
    # With an instrumentation of ours, the library adds none of its default metrics.
    instrumentator.add(_record)
    instrumentator.instrument(app)
