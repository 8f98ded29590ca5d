"""Prometheus metrics every service exposes on `/metrics`. Names are documented in
docs/operations.md; labels are bounded (no call ids, no tenant ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_CREATED = Counter("switchboard_calls_created_total", "Calls accepted by the API", ["agent"])
CALLS_ENDED = Counter(
    "switchboard_calls_ended_total", "Calls that reached a terminal status", ["status"]
)
# Every HTTP route of every process, by route template (never the raw path: no ids);
# observed through prometheus-fastapi-instrumentator (observability/http_metrics.py).
HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total",
    "HTTP requests answered, by route template, method and status code",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "switchboard_http_request_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CALLS_CREATED_TO_ENDED_SECONDS = Histogram(
    "switchboard_call_end_to_end_seconds",
    "From the 201 that accepted a call to its terminal status (its call.completed event), "
    "by that status",
    ["status"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "switchboard_provider_request_seconds",
    "Latency of requests to voice providers, by outcome (ok, transient, permanent)",
    ["provider", "operation", "outcome"],
)
PROVIDER_ERRORS = Counter(
    "switchboard_provider_errors_total",
    "Failed provider requests by kind (transient, permanent)",
    ["provider", "operation", "kind"],
)
DIALER_IN_FLIGHT = Gauge(
    "switchboard_dialer_in_flight", "Provider create-call requests in flight", ["provider"]
)
PROVIDER_BREAKER_STATE = Gauge(
    "switchboard_provider_breaker_state",
    "1 for the state each provider's circuit breaker is in (as this dialer last saw it)",
    ["provider", "state"],
)
WEBHOOK_ATTEMPTS = Counter(
    "switchboard_webhook_attempts_total",
    "Customer webhook attempts by result (delivered, retry, failed)",
    ["result"],
)
WEBHOOK_DELIVERIES_ENDED = Counter(
    "switchboard_webhook_deliveries_ended_total",
    "Customer webhook deliveries reaching a final status, by how: delivered, refused "
    "(the endpoint answered 3xx/4xx or the URL guard refused it), exhausted (the retry "
    "schedule ran out), abandoned (the endpoint no longer targets it)",
    ["reason"],
)
WEBHOOK_SECONDS = Histogram(
    "switchboard_webhook_request_seconds",
    "Latency of customer webhook attempts by result (delivered, retry, failed)",
    ["result"],
)
MESSAGES_PUBLISHED = Counter(
    "switchboard_messages_published_total", "Events confirmed by the broker", ["type"]
)
PUBLISH_FAILURES = Counter(
    "switchboard_publish_failures_total", "Events the broker did not confirm", ["type"]
)
MESSAGES_RETRIED = Counter(
    "switchboard_messages_retried_total", "Messages sent to a delayed retry queue", ["queue"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "switchboard_messages_dead_lettered_total", "Messages moved to a dead-letter queue", ["queue"]
)
QUEUE_DEPTH = Gauge(
    "switchboard_queue_depth",
    "Messages waiting in a consumer's work queue that no worker has taken, as sampled by "
    "each worker consuming it",
    ["queue"],
)
CONSUMER_LAG_SECONDS = Histogram(
    "switchboard_consumer_lag_seconds",
    "From an event's occurrence to a worker starting on it (first attempts only)",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
HANDLER_SECONDS = Histogram(
    "switchboard_handler_seconds", "Time a consumer spent on one message", ["queue", "outcome"]
)
CALLBACKS_RECEIVED = Counter(
    "switchboard_callbacks_received_total",
    "Provider callbacks by provider and outcome (applied, duplicate, rejected)",
    ["provider", "outcome"],
)
OUTBOX_REPUBLISHED = Counter(
    "switchboard_outbox_republished_total", "Events the outbox relay published again"
)
OUTBOX_LEFT_TO_RELAY = Counter(
    "switchboard_outbox_left_to_relay_total",
    "New calls whose event the API did not publish itself (too many waiting to be"
    " published, the broker slow or away): the outbox relay publishes them",
)
WATCHDOG_ENDED = Counter(
    "switchboard_watchdog_calls_total",
    "Calls the reconciler acted on by outcome (provider_answer, provider_timeout, redriven)",
    ["outcome"],
)
CALLS_WAITING_FOR_SLOT = Counter(
    "switchboard_calls_slot_waits_total",
    "Calls parked in `queued` because a concurrency limit had no free slot, by limit "
    "(tenant, batch, provider)",
    ["lane"],
)
CALLS_HANDED_ON = Counter(
    "switchboard_calls_handed_on_total",
    "Waiting calls handed a freed slot and sent to be dialed, by limit",
    ["lane"],
)
SLOTS_SWEPT = Counter(
    "switchboard_slots_swept_total",
    "Concurrency slots freed by the sweep because their call no longer needed them "
    "(a release lost with a process), by limit",
    ["lane"],
)
DISPATCHED = Counter(
    "switchboard_dispatcher_calls_total",
    "Due scheduled calls the dispatcher acted on, by outcome (queued, waiting, held, canceled)",
    ["outcome"],
)
REDIALS_SCHEDULED = Counter(
    "switchboard_calls_redials_scheduled_total",
    "Attempts that ended with a redial scheduled by the call's retry policy, by how the "
    "attempt ended",
    ["status"],
)
