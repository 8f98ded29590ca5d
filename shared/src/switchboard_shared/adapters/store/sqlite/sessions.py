"""Browser voice sessions in SQLite (the `SessionStore` port). Every change is a
read-modify-write inside one `BEGIN IMMEDIATE` transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from switchboard_shared.adapters.store.common.paging import to_millis
from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_document,
    stored_now,
    stored_value,
)
from switchboard_shared.adapters.store.common.sessions import (
    check_paging,
    ending_fields,
    holder_keeps_key,
)
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    SESSIONS,
    insert_row,
    replace_row,
    select_all,
    select_one,
)
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import (
    Session,
    SessionEndReason,
    SessionPage,
    SessionStatus,
    SessionUsage,
    TranscriptTurn,
    merged_transcript,
)
from switchboard_shared.ports import ActiveSessionExists

_ACTIVE = SessionStatus.ACTIVE.value
_USAGE = (
    "SELECT COUNT(*), COALESCE(SUM(duration), 0), "
    "COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) "
    "FROM sessions WHERE tenant_id = ?"
)


class SqliteSessionStore(OnSqlite):
    """`SessionStore` on a SQLite database."""

    async def insert_session(
        self, session: Session, idempotency_ttl_seconds: float
    ) -> tuple[Session, bool]:
        stored = as_stored(session)

        def op(conn: sqlite3.Connection) -> tuple[Session, bool]:
            with immediate(conn):
                if stored.idempotency_key is not None:
                    holder: Session | None = select_one(
                        conn,
                        SESSIONS,
                        "tenant_id = ? AND idempotency_key = ?",
                        (stored.tenant_id, stored.idempotency_key),
                    )
                    if holder is not None:
                        if holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
                            return holder, False
                        released = stored_document(holder) | {"idempotency_key": None}
                        replace_row(conn, SESSIONS, released)
                active: Session | None = select_one(
                    conn, SESSIONS, "api_key_id = ? AND status = ?", (stored.api_key_id, _ACTIVE)
                )
                if active is not None:
                    raise ActiveSessionExists(active.session_id)
                insert_row(conn, SESSIONS, stored_document(stored))
                return stored, True

        return await self._db.run(op)

    async def get_session(self, session_id: str, tenant_id: str | None = None) -> Session | None:
        where, params = "session_id = ?", [session_id]
        if tenant_id is not None:
            where, params = where + " AND tenant_id = ?", [*params, tenant_id]
        return await self._db.read(lambda c: select_one(c, SESSIONS, where, params))

    async def list_sessions(
        self, tenant_id: str, status: SessionStatus | None, limit: int, offset: int
    ) -> SessionPage:
        check_paging(limit, offset)
        where, params = "tenant_id = ?", [tenant_id]
        if status is not None:
            where, params = where + " AND status = ?", [*params, status.value]

        def op(conn: sqlite3.Connection) -> SessionPage:
            (total,) = conn.execute(
                f"SELECT COUNT(*) FROM sessions WHERE {where}",  # noqa: S608
                params,
            ).fetchone()
            sql = (
                f"SELECT doc FROM sessions WHERE {where} "  # noqa: S608
                "ORDER BY started_at DESC, session_id DESC LIMIT ? OFFSET ?"
            )
            found = select_all(conn, Session, sql, [*params, limit, offset])
            return SessionPage(sessions=found, total=total)

        return await self._db.run(op)

    async def end_session(
        self, session_id: str, reason: SessionEndReason, ended_at: datetime | None = None
    ) -> Session | None:
        return await self._change_active(
            session_id, lambda session: ending_fields(session, reason, ended_at)
        )

    async def add_transcript_turns(
        self, session_id: str, turns: list[TranscriptTurn]
    ) -> Session | None:
        added = stored_value(turns)
        return await self._change_active(
            session_id,
            lambda session: {
                "transcript": stored_value(session.transcript) + added,
                "updated_at": stored_now(),
            },
        )

    async def set_session_provider(
        self, session_id: str, provider: str, provider_session_id: str
    ) -> Session | None:
        fields = {"provider": provider, "provider_session_id": provider_session_id}
        return await self._change_active(
            session_id, lambda _: fields | {"updated_at": stored_now()}
        )

    async def _change_active(
        self, session_id: str, fields_for: Callable[[Session], dict[str, Any]]
    ) -> Session | None:
        """Apply `fields_for(session)` to the session if it is still active."""

        def op(conn: sqlite3.Connection) -> Session | None:
            with immediate(conn):
                session: Session | None = select_one(
                    conn, SESSIONS, "session_id = ? AND status = ?", (session_id, _ACTIVE)
                )
                if session is None:
                    return None
                changed = stored_document(session) | fields_for(session)
                replace_row(conn, SESSIONS, changed)
                return Session.model_validate(changed)

        return await self._db.run(op)

    async def find_session_by_provider_id(
        self, provider: str, provider_session_id: str
    ) -> Session | None:
        where = "provider = ? AND provider_session_id = ?"
        params = (provider, provider_session_id)
        return await self._db.read(lambda c: select_one(c, SESSIONS, where, params))

    async def fill_session_transcript(
        self, session_id: str, reported: list[TranscriptTurn]
    ) -> Session | None:
        def op(conn: sqlite3.Connection) -> Session | None:
            with immediate(conn):
                session: Session | None = select_one(
                    conn, SESSIONS, "session_id = ?", (session_id,)
                )
                if session is None or len(reported) <= len(session.transcript):
                    return session
                merged = merged_transcript(session.transcript, reported)
                changed = stored_document(session) | {
                    "transcript": stored_value(merged),
                    "updated_at": stored_now(),
                }
                replace_row(conn, SESSIONS, changed)
                return Session.model_validate(changed)

        return await self._db.run(op)

    async def touch_session(self, session_id: str, alive_until: datetime) -> Session | None:
        # Each live relay touches its session every second: one UPDATE of the two fields
        # (columns and `doc`), not a read-modify-write of the whole document, which was a
        # sixth of the media edge's CPU at 200 sessions (bench/RESULTS.md, sessions).
        until: datetime = stored_value(alive_until)
        now = stored_now()

        def op(conn: sqlite3.Connection) -> Session | None:
            with immediate(conn):
                found = conn.execute(
                    "UPDATE sessions SET alive_until = ?, updated_at = ?, doc = json_set("
                    "doc, '$.alive_until', ?, '$.updated_at', ?) "
                    "WHERE session_id = ? AND status = ? RETURNING doc",
                    (
                        to_millis(until),
                        to_millis(now),
                        until.isoformat(),
                        now.isoformat(),
                        session_id,
                        _ACTIVE,
                    ),
                ).fetchall()
            return Session.model_validate_json(found[0][0]) if found else None

        return await self._db.run(op)

    async def find_sessions(
        self,
        *,
        expiring_before: datetime | None = None,
        abandoned_before: datetime | None = None,
        notify_pending: bool | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Session]:
        clauses: list[str] = []
        params: list[Any] = []
        if expiring_before is not None:
            clauses.append("status = ? AND expires_at < ?")
            params += [_ACTIVE, to_millis(expiring_before)]
        if abandoned_before is not None:
            clauses.append("status = ? AND alive_until < ?")
            params += [_ACTIVE, to_millis(abandoned_before)]
        if notify_pending is not None:
            clauses.append("notify_pending = ?")
            params.append(int(notify_pending))
        if updated_before is not None:
            clauses.append("updated_at < ?")
            params.append(to_millis(updated_before))
        where = " AND ".join(clauses) or "1 = 1"
        sql = f"SELECT doc FROM sessions WHERE {where} ORDER BY updated_at LIMIT ?"  # noqa: S608
        return await self._db.run(lambda c: select_all(c, Session, sql, [*params, limit]))

    async def mark_session_notified(self, session_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                session: Session | None = select_one(
                    conn, SESSIONS, "session_id = ? AND notify_pending = 1", (session_id,)
                )
                if session is not None:
                    replace_row(
                        conn, SESSIONS, stored_document(session) | {"notify_pending": False}
                    )

        await self._db.run(op)

    async def use_join_token(self, token_id: str, expires_at: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                # Expired tokens are refused by their signature: their records can go.
                conn.execute(
                    "DELETE FROM used_join_tokens WHERE expires_at < ?", (to_millis(utcnow()),)
                )
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO used_join_tokens (token_id, expires_at) VALUES (?, ?)",
                    (token_id, to_millis(expires_at)),
                )
                return inserted.rowcount == 1

        return await self._db.run(op)

    async def session_usage(self, tenant_id: str) -> SessionUsage:
        def op(conn: sqlite3.Connection) -> SessionUsage:
            total, seconds, active = conn.execute(_USAGE, (tenant_id,)).fetchone()
            return SessionUsage(
                total_sessions=total, session_seconds=seconds, active_sessions=active
            )

        return await self._db.run(op)
