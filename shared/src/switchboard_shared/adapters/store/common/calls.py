"""The call rules both stores apply alike: how `update_call`'s guard compares, what one
update writes (with the sequence bump), the idempotency rule of `insert_call`, and the
usage roll-up. The changes and the guard arrive validated (domain/call_changes.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from switchboard_shared.adapters.store.common.records import stored_now, stored_value
from switchboard_shared.domain.batches import Batch
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import TERMINAL_STATUSES, Call, CallStatus, Usage
from switchboard_shared.ports import IdempotencyConflict


def stored_guard(guard: CallGuard | None) -> dict[str, Any]:
    """The field equalities of `guard` with values as stored; None stays None (it
    matches a missing or null field)."""
    equalities: dict[str, Any] = stored_value(guard.equalities()) if guard else {}
    return equalities


def guard_statuses(guard: CallGuard | None) -> list[str] | None:
    """The statuses `guard` allows, as stored and sorted; None: any status."""
    if guard is None or guard.statuses is None:
        return None
    return sorted(s.value for s in guard.statuses)


def guard_holds(document: Mapping[str, Any], guard: CallGuard | None) -> bool:
    """Whether a stored call `document` passes `guard` (for a store that checks it in
    code rather than in its query)."""
    statuses = guard_statuses(guard)
    if statuses is not None and document.get("status") not in statuses:
        return False
    return all(document.get(name) == value for name, value in stored_guard(guard).items())


@dataclass(frozen=True)
class CallWrite:
    """What one `update_call` writes: `fields` to set (as stored, `updated_at` always
    among them) and whether `sequence` goes up by one in the same write."""

    fields: dict[str, Any]
    bump_sequence: bool


def call_write(changes: CallChanges, *, bump_sequence: bool) -> CallWrite:
    """The write for `changes`: an `updated_at` among them is kept (else: now); a bump
    also sets `publish_pending`, so the relay publishes the new sequence.

    Raises ValueError for a bump with an explicit `sequence`.
    """
    fields: dict[str, Any] = stored_value(changes.changed())
    if bump_sequence and "sequence" in fields:
        raise ValueError("bump_sequence and an explicit sequence exclude each other")
    fields.setdefault("updated_at", stored_now())
    if bump_sequence:
        fields["publish_pending"] = True
    return CallWrite(fields, bump_sequence)


def holder_keeps_key(holder: Call, new_call: Call, ttl_seconds: float, now: datetime) -> bool:
    """The idempotency rule, for a `holder` that has the key `new_call` asks for
    (`key_still_held`)."""
    return key_still_held(
        holder.created_at,
        holder.request_fingerprint,
        new_call.request_fingerprint,
        ttl_seconds,
        now,
    )


def key_still_held(
    held_since: datetime,
    held_fingerprint: str | None,
    asked_fingerprint: str | None,
    ttl_seconds: float,
    now: datetime,
) -> bool:
    """The idempotency rule of every insert (calls, sessions), for a record holding the
    key a new one asks for since `held_since`.

    True: the holder is still within the TTL and the request is the same, so the caller
    returns the holder. False: the holder is older than the TTL and gives the key up.
    Raises IdempotencyConflict for a live key reused with a different request.
    """
    if now - held_since >= timedelta(seconds=ttl_seconds):
        return False
    if held_fingerprint != asked_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return True


def batch_holder_keeps_key(
    holder: Batch, new_batch: Batch, ttl_seconds: float, now: datetime
) -> bool:
    """`holder_keeps_key` for batches: the same rule, the same error."""
    if now - holder.created_at >= timedelta(seconds=ttl_seconds):
        return False
    if holder.request_fingerprint != new_batch.request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return True


def usage_from_groups(groups: Iterable[tuple[str, int, int]]) -> Usage:
    """A tenant's usage from its calls grouped by status, as (status, calls, seconds);
    `by_status` has every status, zeros included."""
    by_status = {s.value: 0 for s in CallStatus}
    seconds = 0
    for status, count, duration in groups:
        by_status[status] = count
        seconds += int(duration)
    # Queued or live: a call waiting for its time is not active yet.
    waiting = {s.value for s in TERMINAL_STATUSES} | {CallStatus.SCHEDULED.value}
    return Usage(
        total_calls=sum(by_status.values()),
        total_seconds=seconds,
        active_calls=sum(n for s, n in by_status.items() if s not in waiting),
        by_status=by_status,
    )
