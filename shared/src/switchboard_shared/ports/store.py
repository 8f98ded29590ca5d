"""What business logic needs of the state store, one protocol per aggregate, composed into
`Store`. The errors every store adapter raises are here too, so callers never import a
driver."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.batches import (
    Batch,
    BatchCall,
    BatchFilter,
    BatchPage,
    BatchProgress,
    BatchState,
)
from switchboard_shared.domain.blocked_numbers import BlockedNumber, BlockedNumberPage
from switchboard_shared.domain.breakers import ProviderBreaker
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallFilter, CallPage, CallStatus, Usage
from switchboard_shared.domain.slots import Slot
from switchboard_shared.domain.tenants import ApiKey, Tenant
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryPage,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports.session_store import ConfigStore, SessionStore


class StoreError(Exception):
    """The store could not be reached or failed; callers may retry."""


class AlreadyExists(StoreError):
    """A unique value (tenant name, key hash, ...) is taken."""


class IdempotencyConflict(StoreError):
    """The idempotency key was used with a different request body."""


class InvalidCursor(StoreError):
    """A paging cursor that this store did not issue, or that does not fit the query."""


class ActiveSessionExists(StoreError):
    """The API key already has an active session (one at a time per key)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} is active for this API key")
        self.session_id = session_id


class TenantStore(Protocol):
    """Tenants and their API keys."""

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

    async def set_tenant_limits(
        self, tenant_id: str, *, max_concurrent_calls: int
    ) -> Tenant | None:
        """Set the tenant's limits; returns the updated tenant, None when there is none."""


class AgentStore(Protocol):
    """The agents operators define (the same for every tenant)."""

    async def upsert_agent(self, agent: Agent) -> None: ...

    async def get_agent(self, key: str) -> Agent | None: ...

    async def list_agents(self) -> list[Agent]:
        """All agents, enabled or not, ordered by key."""


class CallStore(Protocol):
    """Calls, their outbox flags and the usage roll-up. A read that takes a `tenant_id` is
    scoped to it."""

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
        changes: CallChanges,
        *,
        guard: CallGuard | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """Atomically apply `changes` (the fields given in it) and set `updated_at` (an
        `updated_at` among the changes is kept).

        With a `guard` (compare and set), only if the call passes it: a status among
        `guard.statuses`, and each field the guard gives equal to its value (None matches
        a missing/null field). With `bump_sequence`, `sequence` is incremented and
        `publish_pending` set in the same write (ValueError if `changes` sets `sequence`).
        Returns the updated call, or None when the call does not exist or the guard
        failed.
        """

    async def mark_published(self, published: Sequence[tuple[str, int]]) -> None:
        """For each `(call_id, sequence)`, clear the call's `publish_pending` if its
        sequence is still `sequence` (an event for a newer sequence stays pending until
        its own publish is confirmed). One write for them all."""

    async def find_calls(
        self,
        *,
        statuses: frozenset[CallStatus] | None = None,
        updated_before: datetime | None = None,
        publish_pending: bool | None = None,
        deadline_before: datetime | None = None,
        notify_pending: bool | None = None,
        due_before: datetime | None = None,
        batch_id: str | None = None,
        held: bool | None = None,
        waiting_lane: str | None = None,
        waiting_before: datetime | None = None,
        waiting: bool | None = None,
        limit: int = 100,
    ) -> list[Call]:
        """Calls of any tenant matching every given criterion, oldest `updated_at` first:
        for the outbox relay (`publish_pending=True`), the reconciler (`statuses` with
        `updated_before`, or with `deadline_before`: a `watchdog_deadline` earlier than
        it; calls without one never match), the notifier's completion sweep
        (`notify_pending=True`) and the dispatcher (`statuses` with `due_before`: a
        `next_attempt_at` at or before it, soonest due first: one index scan on
        (status, next_attempt_at)); and batch control (`batch_id`, with `held`: a due
        time set aside by a pause, or none).

        Calls waiting for a slot: `waiting_lane` (the calls waiting in that lane) and
        `waiting_before` (calls of any lane whose `waiting_since` is before it); with
        either, oldest waiting first (`waiting_since` ascending), one index scan. Calls
        not waiting (no `waiting_lane` / `waiting_since`) never match them. `waiting`
        True or False: only calls that wait in some lane, or only calls that do not
        (the reconciler leaves waiting calls alone)."""

    async def next_waiting_lane(self, after: str | None = None) -> str | None:
        """The first lane, in name order after `after` (None: from the start), in which
        some call waits for a slot; None when there is no further one. One index probe
        per lane: walking every lane costs the lanes, not the calls waiting in them."""

    async def usage(self, tenant_id: str) -> Usage: ...


class WebhookStore(Protocol):
    """Each tenant's webhook endpoint and the deliveries to it."""

    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Create or replace the tenant's endpoint."""

    async def create_webhook_endpoint(
        self, endpoint: WebhookEndpoint
    ) -> tuple[WebhookEndpoint, bool]:
        """Insert unless the tenant has one; returns (stored, created). The tenant's
        signing secret is made here, once, whoever asks first."""

    async def get_webhook_endpoint(self, tenant_id: str) -> WebhookEndpoint | None: ...

    async def delete_webhook_endpoint(self, tenant_id: str) -> bool: ...

    async def create_delivery(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """Insert unless one exists for (event_id, url); returns (stored, created)."""

    async def get_delivery(
        self, delivery_id: str, tenant_id: str | None = None
    ) -> Delivery | None: ...

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None = None,
    ) -> Delivery | None:
        """In one write: append an attempt, set the delivery's status and
        `next_attempt_at` (when the next attempt is due while `pending`; stored as None
        for delivered and failed), and count the attempt in `schedule_attempts`."""

    async def claim_due_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Pending deliveries of any tenant due by `now` (`next_attempt_at <= now`),
        oldest due first, at most `limit`. Each returned one has been moved to
        `next_attempt_at = lease_until` by a compare-and-set on its previous due time, so
        two callers never get the same delivery; one that dies mid-attempt loses the
        lease and the delivery comes due again at `lease_until`."""

    async def restart_delivery(
        self, delivery_id: str, next_attempt_at: datetime, replayed_at: datetime | None
    ) -> Delivery | None:
        """In one write: status `pending`, a fresh schedule (`schedule_attempts` 0) due
        at `next_attempt_at`, `replayed_at` set (None: not started by a replay); the
        attempts are kept. None when there is no such delivery."""

    async def list_deliveries(
        self, tenant_id: str, filters: DeliveryFilter, limit: int, cursor: str | None
    ) -> DeliveryPage:
        """Newest first, paged like `list_calls`."""


class BreakerStore(Protocol):
    """Each provider's circuit breaker, shared by every dialer replica."""

    async def get_breaker(self, provider: str) -> ProviderBreaker | None: ...

    async def list_breakers(self) -> list[ProviderBreaker]: ...

    async def save_breaker(self, breaker: ProviderBreaker) -> ProviderBreaker | None:
        """Compare-and-set: store `breaker` if the stored one still has its `version`
        (0: none stored yet) and return it with the next version; None when another
        replica changed it first."""


class BlockedNumberStore(Protocol):
    """Each tenant's blocked numbers (E.164, normalized by the caller)."""

    async def block_number(self, entry: BlockedNumber) -> tuple[BlockedNumber, bool]:
        """Block unless blocked already; returns (stored, created)."""

    async def unblock_number(self, tenant_id: str, phone: str) -> bool:
        """True when the number was blocked and no longer is."""

    async def blocked_among(self, tenant_id: str, phones: Collection[str]) -> set[str]:
        """Which of `phones` the tenant blocked (any number of them, read in chunks)."""

    async def list_blocked_numbers(
        self, tenant_id: str, limit: int, cursor: str | None
    ) -> BlockedNumberPage:
        """Newest first, paged like `list_calls`."""


class SlotStore(Protocol):
    """Counted slots shared by every replica: at most `limit` holders per scope (a
    tenant's concurrent calls, say)."""

    async def take_slot(self, scope: str, holder: str, limit: int) -> bool:
        """Take one of `scope`'s `limit` slots for `holder`. True when taken now, or
        already held by `holder` (idempotent: a holder never holds two slots of one
        scope); False when `limit` or more holders hold one (a limit lowered below the
        holders leaves them in place). Atomic across processes and replicas: concurrent
        takers never exceed `limit`."""

    async def release_slots(self, holder: str) -> list[str]:
        """Give back every slot `holder` holds; returns their scopes (empty: none held)."""

    async def release_slot(self, scope: str, holder: str) -> bool:
        """Give back `holder`'s slot of `scope`; True when one was held."""

    async def count_slots(self, scope: str) -> int:
        """How many holders hold a slot of `scope`."""

    async def find_slots(self, *, taken_before: datetime, limit: int = 100) -> list[Slot]:
        """Slots of any scope taken before `taken_before`, oldest first (the lease sweep)."""

    async def renew_slot(self, scope: str, holder: str, at: datetime) -> bool:
        """Set the `taken_at` of `holder`'s slot of `scope` to `at` (the sweep looked and
        the holder still needs it); True when one was held."""


class BatchStore(Protocol):
    """Batches; their calls are calls (`CallStore`) carrying the `batch_id`."""

    async def insert_batch(
        self,
        batch: Batch,
        template: Call,
        calls: list[BatchCall],
        idempotency_ttl_seconds: float,
    ) -> tuple[Batch, bool]:
        """Store the batch and its calls (each `template` with the row's own fields:
        `BatchCall.fields`); returns (batch, created). With an
        `idempotency_key` held by a batch of the tenant younger than the TTL: (that
        batch, False) for the same `request_fingerprint`, else IdempotencyConflict; the
        calls are then not stored."""

    async def get_batch(self, batch_id: str, tenant_id: str | None = None) -> Batch | None: ...

    async def set_batch_state(
        self, batch_id: str, state: BatchState, *, from_states: frozenset[BatchState]
    ) -> Batch | None:
        """Compare-and-set the batch's state; None when it is not in `from_states`."""

    async def batch_progress(self, batch_id: str) -> BatchProgress:
        """The batch's calls by status and the attempts they ended."""

    async def batch_has_open_calls(self, batch_id: str) -> bool:
        """Whether any call of the batch is not terminal (one index probe)."""

    async def find_open_batches(self, limit: int = 100) -> list[Batch]:
        """Batches of any tenant without `completed_at`, oldest first."""

    async def mark_batch_completed(self, batch_id: str, at: datetime) -> Batch | None:
        """Set `completed_at` unless set already; None then."""

    async def mark_batch_started(self, batch_id: str, at: datetime) -> Batch | None:
        """Set `started_at` unless set already (the first writer wins); None then."""

    async def list_batches(
        self, tenant_id: str, filters: BatchFilter, limit: int, cursor: str | None
    ) -> BatchPage:
        """The tenant's batches, newest first, paged like `list_calls`; `filters.status`
        is the batch's `recorded_status`."""


class Store(
    TenantStore,
    AgentStore,
    CallStore,
    WebhookStore,
    BreakerStore,
    ConfigStore,
    SessionStore,
    BlockedNumberStore,
    BatchStore,
    SlotStore,
    Protocol,
):
    """All state: what each part of the product needs, composed. A consumer that needs one
    part may take just that protocol."""

    async def start(self) -> None:
        """Connect and create tables/indexes idempotently."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises StoreError when the store is unreachable (readiness)."""
