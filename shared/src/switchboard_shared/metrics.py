"""Prometheus metrics every service exposes on `/metrics`. Names are documented in
docs/operations.md; labels are bounded (no call ids, no tenant ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_CREATED = Counter("switchboard_calls_created_total", "Calls accepted by the API", ["agent"])
CALLS_ENDED = Counter(
    "switchboard_calls_ended_total", "Calls that reached a terminal status", ["status"]
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "switchboard_provider_request_seconds",
    "Latency of requests to voice providers",
    ["provider", "operation"],
)
PROVIDER_ERRORS = Counter(
    "switchboard_provider_errors_total",
    "Failed provider requests by kind (transient, permanent)",
    ["provider", "operation", "kind"],
)
DIALER_IN_FLIGHT = Gauge(
    "switchboard_dialer_in_flight", "Provider create-call requests in flight", ["provider"]
)
WEBHOOK_ATTEMPTS = Counter(
    "switchboard_webhook_attempts_total",
    "Customer webhook attempts by result (delivered, retry, failed)",
    ["result"],
)
WEBHOOK_SECONDS = Histogram(
    "switchboard_webhook_request_seconds", "Latency of customer webhook requests"
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
WATCHDOG_ENDED = Counter(
    "switchboard_watchdog_calls_total",
    "Calls the reconciler acted on by outcome (provider_answer, provider_timeout, redriven)",
    ["outcome"],
)
