"""Batches in SQLite (the `BatchStore` port): the batch and its calls in one transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from switchboard_shared.adapters.store.common.calls import batch_holder_keeps_key
from switchboard_shared.adapters.store.common.paging import Position, read_batch_page, to_millis
from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_document,
    stored_value,
)
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import (
    BATCHES,
    CALLS,
    insert_row,
    replace_row,
    select_all,
    select_one,
)
from switchboard_shared.domain.batches import (
    Batch,
    BatchCall,
    BatchFilter,
    BatchPage,
    BatchProgress,
    BatchState,
    BatchStatus,
)
from switchboard_shared.domain.calls import Call, CallStatus, utcnow

_OPEN = sorted(s.value for s in CallStatus if not s.is_terminal)
_PROGRESS = (
    "SELECT status, COUNT(*), COALESCE(SUM(json_array_length(doc, '$.attempts')), 0) "
    "FROM calls WHERE batch_id = ? GROUP BY status"
)


def _status_clause(status: BatchStatus, now: datetime) -> tuple[str, list[Any]]:
    """The WHERE clause of the batches whose `recorded_status` at `now` is `status`."""
    if status is BatchStatus.COMPLETED:
        return "completed_at IS NOT NULL", []
    if status in (BatchStatus.CANCELED, BatchStatus.PAUSED):
        state = BatchState.CANCELED if status is BatchStatus.CANCELED else BatchState.PAUSED
        return "completed_at IS NULL AND state = ?", [state.value]
    clause = (
        "started_at IS NULL AND first_due > ?"
        if status is BatchStatus.SCHEDULED
        else "(started_at IS NOT NULL OR first_due IS NULL OR first_due <= ?)"
    )
    return f"completed_at IS NULL AND state = ? AND {clause}", [
        BatchState.ACTIVE.value,
        to_millis(now),
    ]


class SqliteBatchStore(OnSqlite):
    """`BatchStore` on a SQLite database."""

    async def insert_batch(
        self,
        batch: Batch,
        template: Call,
        calls: list[BatchCall],
        idempotency_ttl_seconds: float,
    ) -> tuple[Batch, bool]:
        stored = as_stored(batch)
        rows = list(
            CALLS.rows_sharing(
                stored_document(template), (stored_value(call.fields()) for call in calls)
            )
        )

        def op(conn: sqlite3.Connection) -> tuple[Batch, bool]:
            with immediate(conn):
                if stored.idempotency_key is not None:
                    holder = select_one(
                        conn,
                        BATCHES,
                        "tenant_id = ? AND idempotency_key = ?",
                        (stored.tenant_id, stored.idempotency_key),
                    )
                    if holder is not None:
                        if batch_holder_keeps_key(
                            holder, stored, idempotency_ttl_seconds, utcnow()
                        ):
                            return holder, False
                        replace_row(
                            conn, BATCHES, stored_document(holder) | {"idempotency_key": None}
                        )
                insert_row(conn, BATCHES, stored_document(stored))
                if rows:
                    names = list(rows[0])
                    conn.executemany(
                        f"INSERT INTO calls ({', '.join(names)}) "  # noqa: S608
                        f"VALUES ({', '.join(':' + n for n in names)})",
                        rows,
                    )
                return stored, True

        return await self._db.run(op)

    async def get_batch(self, batch_id: str, tenant_id: str | None = None) -> Batch | None:
        where, params = "batch_id = ?", [batch_id]
        if tenant_id is not None:
            where, params = "batch_id = ? AND tenant_id = ?", [batch_id, tenant_id]
        return await self._db.read(lambda c: select_one(c, BATCHES, where, params))

    async def set_batch_state(
        self, batch_id: str, state: BatchState, *, from_states: frozenset[BatchState]
    ) -> Batch | None:
        def op(conn: sqlite3.Connection) -> Batch | None:
            with immediate(conn):
                current: Batch | None = select_one(conn, BATCHES, "batch_id = ?", (batch_id,))
                if current is None or current.state not in from_states:
                    return None
                updated = as_stored(
                    current.model_copy(update={"state": state, "updated_at": utcnow()})
                )
                replace_row(conn, BATCHES, stored_document(updated))
                return updated

        return await self._db.run(op)

    async def batch_has_open_calls(self, batch_id: str) -> bool:
        marks = ", ".join("?" * len(_OPEN))
        sql = f"SELECT 1 FROM calls WHERE batch_id = ? AND status IN ({marks}) LIMIT 1"  # noqa: S608
        found = await self._db.run(lambda c: c.execute(sql, [batch_id, *_OPEN]).fetchone())
        return found is not None

    async def find_open_batches(self, limit: int = 100) -> list[Batch]:
        sql = "SELECT doc FROM batches WHERE completed_at IS NULL ORDER BY created_at LIMIT ?"
        return await self._db.run(lambda c: select_all(c, Batch, sql, [limit]))

    async def mark_batch_completed(self, batch_id: str, at: datetime) -> Batch | None:
        def op(conn: sqlite3.Connection) -> Batch | None:
            with immediate(conn):
                current: Batch | None = select_one(
                    conn, BATCHES, "batch_id = ? AND completed_at IS NULL", (batch_id,)
                )
                if current is None:
                    return None
                done = as_stored(current.model_copy(update={"completed_at": at}))
                replace_row(conn, BATCHES, stored_document(done))
                return done

        return await self._db.run(op)

    async def mark_batch_started(self, batch_id: str, at: datetime) -> Batch | None:
        def op(conn: sqlite3.Connection) -> Batch | None:
            # Read first: every dial of the batch asks, only the first one writes.
            probe = "SELECT 1 FROM batches WHERE batch_id = ? AND started_at IS NULL"
            if conn.execute(probe, (batch_id,)).fetchone() is None:
                return None
            with immediate(conn):
                current: Batch | None = select_one(
                    conn, BATCHES, "batch_id = ? AND started_at IS NULL", (batch_id,)
                )
                if current is None:
                    return None
                started = as_stored(current.model_copy(update={"started_at": at}))
                replace_row(conn, BATCHES, stored_document(started))
                return started

        return await self._db.run(op)

    async def list_batches(
        self, tenant_id: str, filters: BatchFilter, limit: int, cursor: str | None
    ) -> BatchPage:
        where: list[str] = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        if filters.status is not None:
            clause, values = _status_clause(filters.status, utcnow())
            where.append(clause)
            params += values
        if filters.agent is not None:
            where.append("json_extract(doc, '$.agent') = ?")
            params.append(filters.agent)
        if filters.created_after is not None:
            where.append("created_at > ?")
            params.append(to_millis(filters.created_after))
        if filters.created_before is not None:
            where.append("created_at < ?")
            params.append(to_millis(filters.created_before))

        async def fetch(after: Position | None, count: int) -> list[Batch]:
            clauses, values = list(where), list(params)
            if after is not None:
                clauses.append("(created_at, batch_id) < (?, ?)")
                values += [to_millis(after.created_at), after.id]
            sql = (
                f"SELECT doc FROM batches WHERE {' AND '.join(clauses)} "  # noqa: S608
                "ORDER BY created_at DESC, batch_id DESC LIMIT ?"
            )
            return await self._db.run(lambda c: select_all(c, Batch, sql, [*values, count]))

        return await read_batch_page(limit, cursor, fetch)

    async def batch_progress(self, batch_id: str) -> BatchProgress:
        groups = await self._db.run(lambda c: c.execute(_PROGRESS, (batch_id,)).fetchall())
        return BatchProgress.of(
            {status: count for status, count, _ in groups}, sum(int(a) for *_, a in groups)
        )
