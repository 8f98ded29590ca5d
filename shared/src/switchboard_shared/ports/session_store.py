"""The state store's parts for browser voice sessions: each tenant's defaults and the
sessions themselves (composed into `Store` in `store.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from switchboard_shared.domain.sessions import (
    Session,
    SessionEndReason,
    SessionPage,
    SessionStatus,
    SessionUsage,
    TranscriptTurn,
)
from switchboard_shared.domain.tenant_config import SessionDefaults, TenantConfig


class ConfigStore(Protocol):
    """Each tenant's defaults (`GET/PUT /v1/config`)."""

    async def get_config(self, tenant_id: str) -> TenantConfig | None:
        """The stored configuration; None for a tenant that never changed its defaults."""

    async def update_config(
        self, tenant_id: str, changes: SessionDefaults, fields: set[str]
    ) -> TenantConfig:
        """In one write: the `fields` of `changes` set on the stored configuration (the
        defaults for a tenant without one), and the whole result returned; concurrent
        updates of different fields both hold."""


class SessionStore(Protocol):
    """Browser voice sessions. A read that takes a `tenant_id` is scoped to it."""

    async def insert_session(
        self, session: Session, idempotency_ttl_seconds: float
    ) -> tuple[Session, bool]:
        """Store a new active session; returns (session, created).

        The idempotency rule of `insert_call` holds (a live key with the same
        `request_fingerprint` returns its session, with another raises
        IdempotencyConflict). Otherwise, when the session's `api_key_id` already has an
        active session, raises ActiveSessionExists naming it: even concurrent inserts
        leave at most one active session per key."""

    async def get_session(self, session_id: str, tenant_id: str | None = None) -> Session | None:
        """By id; with `tenant_id`, only that tenant's session."""

    async def list_sessions(
        self, tenant_id: str, status: SessionStatus | None, limit: int, offset: int
    ) -> SessionPage:
        """Newest first by (started_at, session_id), `limit` from `offset`, and the total
        matching."""

    async def end_session(
        self, session_id: str, reason: SessionEndReason, ended_at: datetime | None = None
    ) -> Session | None:
        """In one compare-and-set on an active session: its end status for `reason`,
        `reason`, `ended_at` (now unless given), `duration`, and `notify_pending` set.
        None when the session does not exist or has ended already (the first end wins)."""

    async def add_transcript_turns(
        self, session_id: str, turns: list[TranscriptTurn]
    ) -> Session | None:
        """Append `turns` to an active session's transcript in one write; None when it is
        not active."""

    async def set_session_provider(
        self, session_id: str, provider: str, provider_session_id: str
    ) -> Session | None:
        """Record who serves an active session; None when it is not active."""

    async def find_session_by_provider_id(
        self, provider: str, provider_session_id: str
    ) -> Session | None:
        """The session `provider` serves as `provider_session_id` (recorded by
        `set_session_provider`), in any status; an indexed lookup."""

    async def fill_session_transcript(
        self, session_id: str, reported: list[TranscriptTurn]
    ) -> Session | None:
        """In one write, the transcript becomes `merged_transcript(stored, reported)`,
        whatever the session's status (an ended one included); returns the session as
        it is then (unchanged when nothing was missing), None when it does not exist."""

    async def touch_session(self, session_id: str, alive_until: datetime) -> Session | None:
        """Set an active session's `alive_until` (its relay is alive); None when it is not
        active any more (ended elsewhere)."""

    async def find_sessions(
        self,
        *,
        expiring_before: datetime | None = None,
        abandoned_before: datetime | None = None,
        notify_pending: bool | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Session]:
        """Sessions of any tenant matching every given criterion, oldest `updated_at`
        first: the timeout sweep (`expiring_before`: active ones whose max_duration runs
        out before it; `abandoned_before`: active ones whose `alive_until` is earlier)
        and the notifier's sweep (`notify_pending=True`)."""

    async def mark_session_notified(self, session_id: str) -> None:
        """Clear `notify_pending`: its session.ended has its deliveries."""

    async def session_usage(self, tenant_id: str) -> SessionUsage: ...

    async def use_join_token(self, token_id: str, expires_at: datetime) -> bool:
        """Record a join token as used; True the first time, False for every later use
        (from any replica). Records may be forgotten after `expires_at`."""
