"""A provider's session webhook into the session it names: the transcript the media edge
may have missed (it was killed before storing the last turns) is filled in, and a
session still active when its provider says the conversation is over, and that nobody
relays any more, is ended through `lifecycle.end_session`, so `session.ended` still
goes out exactly once.

The provider's conversation ending is not the session ending: a browser whose socket
dropped (it left, or its media edge died) may rejoin within the disconnect grace, on a
new provider conversation. So a webhook never cuts that grace short: within it, the
transcript is filled and the end is left to the timeout sweep (which then announces
the fuller transcript); past it (a late webhook, no sweep running), the webhook ends
the session itself.

The order matters: the transcript is filled first, so a session ended after it is
announced with the whole transcript. A session that had ended already keeps its one
`session.ended` (sent with what was stored then); only its stored transcript, which
`GET /v1/sessions/{id}` shows, becomes the fuller one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import Session, SessionEndReason, TranscriptTurn
from switchboard_shared.ports import Bus, SessionStore
from switchboard_shared.ports.session_provider import SessionCallback
from switchboard_shared.sessions import lifecycle

log = logging.getLogger(__name__)


class SessionCallbackOutcome(StrEnum):
    APPLIED = "applied"  # the transcript grew, or the session ended
    DUPLICATE = "duplicate"  # nothing was missing: a repeated or late webhook
    IGNORED = "ignored"  # no session of ours, or an event that says nothing of one


async def apply_session_callback(
    store: SessionStore, bus: Bus, provider: str, callback: SessionCallback
) -> SessionCallbackOutcome:
    """Apply `provider`'s webhook about one of its sessions. Idempotent: a second copy
    finds nothing missing and the session ended, and changes nothing."""
    found = await store.find_session_by_provider_id(provider, callback.provider_session_id)
    if found is None:
        # Acknowledged anyway: the provider would retry a refusal, and no retry helps.
        log.warning(
            "session webhook from %s for an unknown conversation %r",
            provider,
            callback.provider_session_id,
        )
        return SessionCallbackOutcome.IGNORED
    session_id = found.session_id
    filled = await store.fill_session_transcript(session_id, _turns(found, callback))
    grew = filled is not None and len(filled.transcript) > len(found.transcript)
    ended = None
    if callback.ended and filled is not None and filled.is_active and _unrelayed(filled):
        # Its edge died and the rejoin grace is over: the provider's conversation is
        # over too, so nothing links the browser to an agent any more.
        reason = (
            SessionEndReason.PROVIDER_ERROR
            if callback.failed
            else SessionEndReason.CLIENT_DISCONNECTED
        )
        ended = await lifecycle.end_session(
            store, bus, session_id, reason, ended_at=_ended_at(filled, callback)
        )
    if grew or ended is not None:
        log.info(
            "session webhook applied: %d turns filled%s",
            len(filled.transcript) - len(found.transcript) if filled else 0,
            f", ended {ended.reason}" if ended is not None else "",
            extra={"session_id": session_id},
        )
        return SessionCallbackOutcome.APPLIED
    return SessionCallbackOutcome.DUPLICATE


def _unrelayed(session: Session) -> bool:
    """Nobody relays the session and its rejoin grace is over (`alive_until` passed)."""
    return session.alive_until is None or session.alive_until <= utcnow()


def _turns(session: Session, callback: SessionCallback) -> list[TranscriptTurn]:
    """The webhook's turns in our terms, each `at` the provider's start plus its offset
    (our start when the provider gives none; the webhook's arrival without an offset)."""
    start = callback.started_at or session.started_at
    now = utcnow()
    return [
        TranscriptTurn(
            role=turn.role,
            text=turn.text,
            at=start + timedelta(seconds=turn.offset_seconds)
            if turn.offset_seconds is not None
            else now,
        )
        for turn in callback.turns
    ]


def _ended_at(session: Session, callback: SessionCallback) -> datetime:
    """When the provider's conversation ended, if it says (its start plus its duration),
    kept between the session's start and now; now otherwise."""
    now = utcnow()
    if callback.started_at is None or callback.duration_seconds is None:
        return now
    end = callback.started_at + timedelta(seconds=callback.duration_seconds)
    return max(session.started_at, min(end, now))
