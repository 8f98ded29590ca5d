"""Every error code the public API answers with, as OpenAPI documents it: the status,
the code, and an example message (docs/api.md#errors lists the same codes). Routes
declare theirs with `error_responses_doc(*TENANT_ROUTE, ...)`."""

from __future__ import annotations

from switchboard_shared.http.errors import ErrorCode

INVALID_CURSOR = ErrorCode(400, "invalid_cursor", "cursor is not one this list returned")
UNAUTHORIZED = ErrorCode(401, "unauthorized", "unknown or revoked API key")
CALL_NOT_FOUND = ErrorCode(404, "call_not_found", "no call '6f1c2d3e-0000-4000-8000-000000000000'")
WEBHOOK_NOT_CONFIGURED = ErrorCode(
    404, "webhook_not_configured", "no webhook endpoint is configured"
)
DELIVERY_NOT_FOUND = ErrorCode(404, "delivery_not_found", "no delivery 'dlv_123'")
BATCH_NOT_FOUND = ErrorCode(
    404, "batch_not_found", "no batch '0b7e3c1a-0000-4000-8000-000000000000'"
)
BATCH_NOT_PAUSABLE = ErrorCode(409, "batch_not_pausable", "the batch is canceled")
INVALID_BATCH = ErrorCode(422, "invalid_batch", "2 of 1000 rows are invalid; nothing was created")
BLOCKED_NUMBER_NOT_FOUND = ErrorCode(
    404, "blocked_number_not_found", "'+996700000001' is not blocked"
)
RECORDING_NOT_AVAILABLE = ErrorCode(
    404, "recording_not_available", "this call has no recording (yet)"
)
RANGE_NOT_SATISFIABLE = ErrorCode(
    416, "range_not_satisfiable", "the requested range lies outside the recording"
)
RECORDING_UNAVAILABLE = ErrorCode(
    502, "recording_unavailable", "the recording could not be fetched"
)
RECORDING_TEMPORARILY_UNAVAILABLE = ErrorCode(
    503, "recording_temporarily_unavailable", "the recording cannot be fetched now; retry shortly"
)
SESSION_NOT_FOUND = ErrorCode(
    404, "session_not_found", "no session 'sess_0f1e2d3c4b5a69788796a5b4c3d2e1f0'"
)
SESSION_ACTIVE = ErrorCode(
    409, "session_active", "this API key already has an active session; end it first"
)
CALL_NOT_CANCELABLE = ErrorCode(409, "call_not_cancelable", "the call is already completed")
PAYLOAD_TOO_LARGE = ErrorCode(
    413, "payload_too_large", "the request body is larger than 65536 bytes"
)
VALIDATION_ERROR = ErrorCode(422, "validation_error", "phone: field required")
INVALID_PHONE = ErrorCode(
    422, "invalid_phone", "phone must be in E.164 format: '+' followed by 2 to 15 digits"
)
UNKNOWN_AGENT = ErrorCode(422, "unknown_agent", "no agent 'altynay' is available to you")
VARIABLES_TOO_LARGE = ErrorCode(422, "variables_too_large", "variables are over 16384 bytes")
METADATA_TOO_LARGE = ErrorCode(422, "metadata_too_large", "metadata is over 4096 bytes")
INVALID_WEBHOOK_URL = ErrorCode(
    422, "invalid_webhook_url", "webhook URL refused: http:// is not allowed, use https://"
)
NUMBER_BLOCKED = ErrorCode(422, "number_blocked", "calls to this number are blocked")
CALLING_WINDOW_NEVER_OPENS = ErrorCode(
    422,
    "calling_window_never_opens",
    "the calling window never opens in every time zone of this number; name the "
    "recipient's timezone",
)
MAX_CONCURRENCY_TOO_HIGH = ErrorCode(
    422,
    "max_concurrency_too_high",
    "max_concurrency 50 is over the tenant's limit of 10 concurrent calls",
)
IDEMPOTENCY_KEY_REUSED = ErrorCode(
    422,
    "idempotency_key_reused",
    "this Idempotency-Key was already used with a different request body",
)
RATE_LIMITED = ErrorCode(429, "rate_limited", "too many requests for this API key; retry in 1 s")
INTERNAL_ERROR = ErrorCode(500, "internal_error", "an internal error occurred")
BROKER_UNAVAILABLE = ErrorCode(
    503, "broker_unavailable", "the request could not be queued now; retry shortly"
)
OVERLOADED = ErrorCode(503, "overloaded", "the server is at capacity; retry after 1 s")

# What any route behind an API key may answer.
TENANT_ROUTE = (UNAUTHORIZED, RATE_LIMITED, INTERNAL_ERROR, OVERLOADED)
