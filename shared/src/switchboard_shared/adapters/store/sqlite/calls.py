"""Calls, their outbox flags and the usage roll-up in SQLite (the `CallStore` port)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from switchboard_shared.adapters.store.common.calls import (
    call_write,
    guard_holds,
    holder_keeps_key,
    usage_from_groups,
)
from switchboard_shared.adapters.store.common.paging import (
    Position,
    check_limit,
    read_call_page,
    to_millis,
)
from switchboard_shared.adapters.store.common.records import as_stored, stored_document
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    CALLS,
    insert_row,
    replace_row,
    select_all,
    select_one,
)
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import (
    Call,
    CallFilter,
    CallPage,
    CallStatus,
    Usage,
    utcnow,
)

_USAGE = (
    "SELECT status, COUNT(*), COALESCE(SUM(duration), 0) FROM calls "
    "WHERE tenant_id = ? GROUP BY status"
)


class SqliteCallStore(OnSqlite):
    """`CallStore` on a SQLite database."""

    async def insert_call(self, call: Call, idempotency_ttl_seconds: float) -> tuple[Call, bool]:
        stored = as_stored(call)

        def op(conn: sqlite3.Connection) -> tuple[Call, bool]:
            with immediate(conn):
                if stored.idempotency_key is not None:
                    holder = select_one(
                        conn,
                        CALLS,
                        "tenant_id = ? AND idempotency_key = ?",
                        (stored.tenant_id, stored.idempotency_key),
                    )
                    if holder is not None:
                        if holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
                            return holder, False
                        released = stored_document(holder) | {"idempotency_key": None}
                        replace_row(conn, CALLS, released)
                insert_row(conn, CALLS, stored_document(stored))
                return stored, True

        return await self._db.run(op)

    async def get_call(self, call_id: str, tenant_id: str | None = None) -> Call | None:
        where = "call_id = ?"
        params: tuple[str, ...] = (call_id,)
        if tenant_id is not None:
            where, params = "call_id = ? AND tenant_id = ?", (call_id, tenant_id)
        return await self._db.read(lambda c: select_one(c, CALLS, where, params))

    async def find_call_by_provider_id(self, provider: str, provider_call_id: str) -> Call | None:
        where = "provider = ? AND provider_call_id = ? ORDER BY created_at DESC LIMIT 1"
        return await self._db.read(
            lambda c: select_one(c, CALLS, where, (provider, provider_call_id))
        )

    async def list_calls(
        self, tenant_id: str, filters: CallFilter, limit: int, cursor: str | None
    ) -> CallPage:
        where: list[str] = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        if filters.status is not None:
            where.append("status = ?")
            params.append(filters.status.value)
        if filters.agent is not None:
            where.append("agent = ?")
            params.append(filters.agent)
        if filters.batch_id is not None:
            where.append("batch_id = ?")
            params.append(filters.batch_id)
        if filters.created_after is not None:
            where.append("created_at > ?")
            params.append(to_millis(filters.created_after))
        if filters.created_before is not None:
            where.append("created_at < ?")
            params.append(to_millis(filters.created_before))

        async def fetch(after: Position | None, count: int) -> list[Call]:
            clauses, values = list(where), list(params)
            if after is not None:
                clauses.append("(created_at, call_id) < (?, ?)")
                values += [to_millis(after.created_at), after.id]
            sql = (
                f"SELECT doc FROM calls WHERE {' AND '.join(clauses)} "  # noqa: S608
                "ORDER BY created_at DESC, call_id DESC LIMIT ?"
            )
            return await self._db.run(lambda c: select_all(c, Call, sql, [*values, count]))

        return await read_call_page(limit, cursor, fetch)

    async def update_call(
        self,
        call_id: str,
        changes: CallChanges,
        *,
        guard: CallGuard | None = None,
        bump_sequence: bool = False,
    ) -> Call | None:
        """As `CallStore.update_call`; the guard is checked in the write transaction."""
        write = call_write(changes, bump_sequence=bump_sequence)

        def op(conn: sqlite3.Connection) -> Call | None:
            with immediate(conn):
                current = select_one(conn, CALLS, "call_id = ?", (call_id,))
                if current is None:
                    return None
                document = stored_document(current)
                if not guard_holds(document, guard):
                    return None
                document.update(write.fields)
                if write.bump_sequence:
                    document["sequence"] += 1
                updated = Call.model_validate(document)
                replace_row(conn, CALLS, stored_document(updated))
                return updated

        return await self._db.run(op)

    async def mark_published(self, published: Sequence[tuple[str, int]]) -> None:
        # The flag in its column and in `doc` at once, by SQL: no row read and rewritten.
        rows = [(call_id, sequence) for call_id, sequence in published]

        def op(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                conn.executemany(
                    "UPDATE calls SET publish_pending = 0,"
                    " doc = json_set(doc, '$.publish_pending', json('false'))"
                    " WHERE call_id = ? AND sequence = ? AND publish_pending = 1",
                    rows,
                )

        if rows:
            await self._db.run(op)

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
        check_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            ordered = sorted(s.value for s in statuses)
            where.append(f"status IN ({', '.join('?' * len(ordered))})")
            params += ordered
        if updated_before is not None:
            where.append("updated_at < ?")
            params.append(to_millis(updated_before))
        if publish_pending is not None:
            where.append("publish_pending = ?")
            params.append(int(publish_pending))
        if deadline_before is not None:
            where.append("watchdog_deadline < ?")
            params.append(to_millis(deadline_before))
        if notify_pending is not None:
            where.append("notify_pending = ?")
            params.append(int(notify_pending))
        if due_before is not None:
            where.append("next_attempt_at <= ?")
            params.append(to_millis(due_before))
        if batch_id is not None:
            where.append("batch_id = ?")
            params.append(batch_id)
        if held is not None:
            null = "IS NOT NULL" if held else "IS NULL"
            where.append(f"json_extract(doc, '$.held_next_attempt_at') {null}")
        if waiting_lane is not None:
            where.append("waiting_lane = ?")
            params.append(waiting_lane)
        if waiting_before is not None:
            where.append("waiting_since < ?")
            params.append(to_millis(waiting_before))
        if waiting is not None:
            where.append(f"waiting_lane IS {'NOT NULL' if waiting else 'NULL'}")
        # Due calls come soonest due first, so (status, next_attempt_at) serves the order
        # too; waiting calls oldest waiting first, served by the waiting indexes.
        if waiting_lane is not None or waiting_before is not None:
            order = "waiting_since, call_id"
        elif due_before is not None:
            order = "next_attempt_at, call_id"
        else:
            order = "updated_at, call_id"
        sql = (
            f"SELECT doc FROM calls WHERE {' AND '.join(where) or '1'} "  # noqa: S608
            f"ORDER BY {order} LIMIT ?"
        )
        return await self._db.run(lambda c: select_all(c, Call, sql, [*params, limit]))

    async def next_waiting_lane(self, after: str | None = None) -> str | None:
        sql = "SELECT MIN(waiting_lane) FROM calls WHERE waiting_lane > ?"
        # Every lane name sorts after '': one probe of calls_by_waiting_lane either way.
        row = await self._db.run(lambda c: c.execute(sql, (after or "",)).fetchone())
        return str(row[0]) if row and row[0] is not None else None

    async def usage(self, tenant_id: str) -> Usage:
        groups = await self._db.run(lambda c: c.execute(_USAGE, (tenant_id,)).fetchall())
        return usage_from_groups(groups)
