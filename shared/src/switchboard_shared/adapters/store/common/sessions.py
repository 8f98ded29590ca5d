"""The session rules both stores apply alike: what ending a session writes, the
idempotency rule of `insert_session`, and the usage roll-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from switchboard_shared.adapters.store.common.calls import key_still_held
from switchboard_shared.adapters.store.common.records import stored_now, stored_value
from switchboard_shared.domain.sessions import Session, SessionEndReason, status_for

# Offset paging reads at most this far into a listing; deeper pages are refused.
MAX_SESSION_OFFSET = 100_000


def holder_keeps_key(holder: Session, new: Session, ttl_seconds: float, now: datetime) -> bool:
    """The idempotency rule for a session `holder` that has the key `new` asks for."""
    return key_still_held(
        holder.started_at, holder.request_fingerprint, new.request_fingerprint, ttl_seconds, now
    )


def ending_fields(
    session: Session, reason: SessionEndReason, ended_at: datetime | None
) -> dict[str, Any]:
    """The fields (as stored) an end writes on the active `session`."""
    end: datetime = stored_value(ended_at) if ended_at is not None else stored_now()
    return {
        "status": status_for(reason).value,
        "reason": reason.value,
        "ended_at": end,
        "duration": session.seconds_until(end),
        "notify_pending": True,
        "updated_at": stored_now(),
    }


def check_paging(limit: int, offset: int) -> None:
    """ValueError for a page the API never asks for (it validates both first)."""
    if limit < 1 or offset < 0 or offset > MAX_SESSION_OFFSET:
        raise ValueError(f"bad page: limit {limit}, offset {offset}")
