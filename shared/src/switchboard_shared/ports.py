"""The interfaces business logic talks to. Adapters live in `switchboard_shared.adapters`.

Errors every adapter raises are defined here too, so callers never import a driver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallFilter, CallPage, CallStatus, Usage
from switchboard_shared.domain.tenants import ApiKey, Tenant
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.events import Event

# ======================================================================================
# Store
# ======================================================================================


class StoreError(Exception):
    """The store could not be reached or failed; callers may retry."""


class AlreadyExists(StoreError):
    """A unique value (tenant name, key hash, ...) is taken."""


class IdempotencyConflict(StoreError):
    """The idempotency key was used with a different request body."""


class InvalidCursor(StoreError):
    """A paging cursor that this store did not issue, or that does not fit the query."""


class Store(Protocol):
    """All state. Every call/delivery read that takes a `tenant_id` is scoped to it."""

    async def start(self) -> None:
        """Connect and create tables/indexes idempotently."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises StoreError when the store is unreachable (readiness)."""

    # --- tenants & keys -------------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> Tenant:
        """Raises AlreadyExists when the name is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def get_tenant_by_name(self, name: str) -> Tenant | None: ...

    async def add_api_key(self, key: ApiKey) -> ApiKey: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with that hash, revoked or not; the caller checks `revoked_at`."""

    async def revoke_api_key(self, key_id: str) -> bool:
        """True when a live key was revoked."""

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]: ...

    # --- agents -------------------------------------------------------------------------
    async def upsert_agent(self, agent: Agent) -> None: ...

    async def get_agent(self, key: str) -> Agent | None: ...

    async def list_agents(self) -> list[Agent]:
        """All agents, enabled or not, ordered by key."""

    # --- calls ----------------------------------------------------------------------------
    async def insert_call(self, call: Call, idempotency_ttl_seconds: float) -> tuple[Call, bool]:
        """Store a new call; returns (call, created).

        When `call.idempotency_key` is set and a call of the same tenant holds that key
        and was created less than `idempotency_ttl_seconds` ago: returns (that call,
        False) if its `request_fingerprint` matches, else raises IdempotencyConflict.
        An older holder gives up the key and the new call is inserted.
        """

    async def get_call(self, call_id: str, tenant_id: str | None = None) -> Call | None:
        """By id; with `tenant_id`, only that tenant's call."""

    async def find_call_by_provider_id(
        self, provider: str, provider_call_id: str
    ) -> Call | None: ...

    async def list_calls(
        self, tenant_id: str, filters: CallFilter, limit: int, cursor: str | None
    ) -> CallPage:
        """Newest first by (created_at, call_id); the opaque cursor continues after the
        last call of the previous page, so concurrent inserts neither skip nor repeat a
        call. Raises InvalidCursor for a cursor it cannot read."""

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        expected_statuses: frozenset[CallStatus] | None = None,
        expected: Mapping[str, Any] | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """Atomically apply `changes` (field -> value) and set `updated_at`.

        Guards (compare and set): with `expected_statuses`, only if the call's status is
        one of them; with `expected`, only if each named field equals the given value
        (None matches a missing/null field). With `bump_sequence`, `sequence` is
        incremented and `publish_pending` set in the same write. Returns the updated
        call, or None when the call does not exist or a guard failed.
        """

    async def mark_published(self, call_id: str, sequence: int) -> None:
        """Clear `publish_pending` if the call's sequence is still `sequence` (an event
        for a newer sequence stays pending until its own publish is confirmed)."""

    async def find_calls(
        self,
        *,
        statuses: frozenset[CallStatus] | None = None,
        updated_before: datetime | None = None,
        publish_pending: bool | None = None,
        deadline_before: datetime | None = None,
        notify_pending: bool | None = None,
        limit: int = 100,
    ) -> list[Call]:
        """Calls of any tenant matching every given criterion, oldest `updated_at` first:
        for the outbox relay (`publish_pending=True`), the reconciler (`statuses` with
        `updated_before`, or with `deadline_before`: a `watchdog_deadline` earlier than
        it; calls without one never match) and the notifier's completion sweep
        (`notify_pending=True`)."""

    async def usage(self, tenant_id: str) -> Usage: ...

    # --- webhook endpoints -------------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Create or replace the tenant's endpoint."""

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        """Insert unless the tenant has one; returns (stored, created). The tenant's
        signing secret is made here, once, whoever asks first."""

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None: ...

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool: ...

    # --- deliveries --------------------------------------------------------------------------
    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """Insert unless one exists for (event_id, url); returns (stored, created)."""

    async def get_delivery(
        self, delivery_id: str, tenant_id: str | None = None
    ) -> Delivery | None: ...

    async def record_attempt(
        self, delivery_id: str, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> Delivery | None:
        """Append an attempt and set the delivery's status in one write."""

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        """Newest first, paged like `list_calls`."""


# ======================================================================================
# Bus
# ======================================================================================


class PublishError(Exception):
    """The broker did not confirm the message (down, unroutable, nacked)."""


class RetryLater(Exception):
    """Raised by a handler: try this message again after a delay (None: the schedule's)."""

    def __init__(self, reason: str = "", delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Reject(Exception):
    """Raised by a handler: this message can never succeed; dead-letter it now."""


@dataclass(frozen=True)
class MessageContext:
    """What a handler knows about the delivery of the message it handles."""

    attempt: int  # 1 for the first delivery, 2 for the first retry, ...
    max_attempts: int  # 1 + len(retry_delays)
    redelivered: bool  # the broker redelivered it after a crash or nack
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[Event, MessageContext], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A consumer's queue: bound to `routing_keys` on the events exchange.

    Retry n (1-based) waits `retry_delays[n-1]`; a `RetryLater(delay=d)` waits the
    smallest configured delay >= d. After the last retry, or on `Reject` or an
    unparseable body, the message goes to the dead-letter queue `<queue>.dlq`.
    """

    queue: str
    routing_keys: tuple[str, ...]
    handler: Handler
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    prefetch: int = 50


class Bus(Protocol):
    async def start(self) -> None:
        """Connect and declare the exchange."""

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish (their messages are acked or
        returned to the queue), then disconnect."""

    async def ping(self) -> None:
        """Raises PublishError when the broker is unreachable (readiness)."""

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        """Persist `event` on the exchange with routing key `event.type`; returns once
        the broker confirmed it. Raises PublishError otherwise."""

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the queue, its retry queues and dead-letter queue, and start consuming.
        At-least-once: a message is acked only after its handler returned."""

    async def stop_consuming(self) -> None:
        """Stop taking new messages (SIGTERM); in-flight handlers go on."""


# ======================================================================================
# Provider
# ======================================================================================


class ProviderError(Exception):
    """Base of provider failures."""


class ProviderTransientError(ProviderError):
    """Worth retrying: connect error, timeout, 429, 5xx."""


class ProviderPermanentError(ProviderError):
    """Retrying will not help: a 4xx, an unknown agent or number."""


class LookupUnsupported(ProviderError):
    """The provider offers no way to find a call by our reference."""


class InvalidCallback(Exception):
    """A provider callback that is not authentic (bad, missing or stale signature)."""


class MalformedCallback(Exception):
    """An authentic callback whose body cannot be understood."""


@dataclass(frozen=True)
class ProviderCallRequest:
    call_id: str  # our id: sent where the provider keeps metadata, never needed back
    to_number: str
    from_number: str | None
    provider_agent_id: str
    variables: Mapping[str, Any]
    callback_url: str


@dataclass(frozen=True)
class ProviderCallState:
    """A provider's view of one call, already mapped to our statuses."""

    provider_call_id: str
    status: CallStatus
    transcript: str | None = None
    duration: int | None = None
    ended_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class Provider(Protocol):
    name: str

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        """Place the call. Raises ProviderTransientError or ProviderPermanentError."""

    async def get_call(self, provider_call_id: str) -> ProviderCallState: ...

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        """The provider's call created for our `call_id` (sent as its reference or
        idempotency key), None when the provider has none. Raises LookupUnsupported when
        the provider cannot look calls up that way, ProviderTransientError when it cannot
        answer now."""

    async def cancel_call(self, provider_call_id: str) -> None: ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        """Verify the signature (InvalidCallback) and parse the native body
        (MalformedCallback) into our statuses."""

    async def close(self) -> None: ...
