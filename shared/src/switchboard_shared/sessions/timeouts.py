"""The timeout sweep: sessions past their max_duration end with status `timeout`, and
sessions nobody relays any more (`alive_until` passed: never joined, or their media edge
died) end `client_disconnected`; read from the store, so a session ends even if every
process restarted meanwhile."""

from __future__ import annotations

import logging

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import SessionEndReason
from switchboard_shared.ports import Bus, SessionStore
from switchboard_shared.sessions import lifecycle

log = logging.getLogger(__name__)


class SessionTimeoutSweep:
    """One round (`run_once`, for `PeriodicTask`) ends every active session whose
    max_duration ran out, each at its `expires_at`. Any number of replicas may run it:
    the store's compare-and-set ends each session once."""

    def __init__(self, store: SessionStore, bus: Bus, *, batch_size: int = 200) -> None:
        self._store = store
        self._bus = bus
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """End the expired sessions; returns how many this round ended."""
        expired = await self._store.find_sessions(expiring_before=utcnow(), limit=self._batch_size)
        ended = 0
        for session in expired:
            done = await lifecycle.end_session(
                self._store,
                self._bus,
                session.session_id,
                SessionEndReason.TIMEOUT,
                ended_at=session.expires_at,
            )
            ended += done is not None
        abandoned = await self._store.find_sessions(
            abandoned_before=utcnow(), limit=self._batch_size
        )
        for session in abandoned:
            done = await lifecycle.end_session(
                self._store, self._bus, session.session_id, SessionEndReason.CLIENT_DISCONNECTED
            )
            ended += done is not None
        if ended:
            log.info("ended %d sessions (max_duration reached, or nobody relays them)", ended)
        return ended
