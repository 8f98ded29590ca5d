"""Each tenant's blocked numbers in SQLite (the `BlockedNumberStore` port)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from switchboard_shared.adapters.store.common.paging import (
    Position,
    read_blocked_number_page,
    to_millis,
)
from switchboard_shared.adapters.store.common.records import as_stored, stored_document
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.adapters.store.sqlite.rows import BLOCKED_NUMBERS, select_all, select_one
from switchboard_shared.domain.blocked_numbers import BlockedNumber, BlockedNumberPage

# Well under SQLite's limit of bound parameters per statement.
_CHUNK = 500


class SqliteBlockedNumberStore(OnSqlite):
    """`BlockedNumberStore` on a SQLite database."""

    async def block_number(self, entry: BlockedNumber) -> tuple[BlockedNumber, bool]:
        stored = as_stored(entry)
        row = BLOCKED_NUMBERS.row(stored_document(stored))

        def op(conn: sqlite3.Connection) -> tuple[BlockedNumber, bool]:
            with immediate(conn):
                held = select_one(
                    conn,
                    BLOCKED_NUMBERS,
                    "tenant_id = ? AND phone = ?",
                    (stored.tenant_id, stored.phone),
                )
                if held is not None:
                    return held, False
                conn.execute(
                    "INSERT INTO blocked_numbers (tenant_id, phone, created_at, doc) "
                    "VALUES (:tenant_id, :phone, :created_at, :doc)",
                    row,
                )
                return stored, True

        return await self._db.run(op)

    async def unblock_number(self, tenant_id: str, phone: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                deleted = conn.execute(
                    "DELETE FROM blocked_numbers WHERE tenant_id = ? AND phone = ?",
                    (tenant_id, phone),
                )
                return deleted.rowcount == 1

        return await self._db.run(op)

    async def blocked_among(self, tenant_id: str, phones: Collection[str]) -> set[str]:
        wanted = sorted(set(phones))

        def op(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT phone FROM blocked_numbers WHERE tenant_id = ? "  # noqa: S608
                    f"AND phone IN ({marks})",
                    [tenant_id, *chunk],
                ).fetchall()
                found.update(row[0] for row in rows)
            return found

        return await self._db.run(op)

    async def list_blocked_numbers(
        self, tenant_id: str, limit: int, cursor: str | None
    ) -> BlockedNumberPage:
        async def fetch(after: Position | None, count: int) -> list[BlockedNumber]:
            clauses: list[str] = ["tenant_id = ?"]
            values: list[Any] = [tenant_id]
            if after is not None:
                clauses.append("(created_at, phone) < (?, ?)")
                values += [to_millis(after.created_at), after.id]
            sql = (
                f"SELECT doc FROM blocked_numbers WHERE {' AND '.join(clauses)} "  # noqa: S608
                "ORDER BY created_at DESC, phone DESC LIMIT ?"
            )
            return await self._db.run(lambda c: select_all(c, BlockedNumber, sql, [*values, count]))

        return await read_blocked_number_page(limit, cursor, fetch)
