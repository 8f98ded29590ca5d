"""Counted slots in SQLite (the `SlotStore` port): one row per holder of a scope's slot.

Taking a slot reads and writes in one `BEGIN IMMEDIATE` transaction, which holds the
file's write lock, so takers in any process on the host are serialized and never exceed
the limit.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from switchboard_shared.adapters.store.common.paging import check_limit, from_millis, to_millis
from switchboard_shared.adapters.store.common.records import stored_now
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite, immediate
from switchboard_shared.domain.slots import Slot

_HELD = "SELECT 1 FROM slots WHERE scope = ? AND holder = ?"
_COUNT = "SELECT COUNT(*) FROM slots WHERE scope = ?"
_TAKE = "INSERT INTO slots (scope, holder, taken_at) VALUES (?, ?, ?)"
_OLDEST = (
    "SELECT scope, holder, taken_at FROM slots WHERE taken_at < ? "
    "ORDER BY taken_at, scope, holder LIMIT ?"
)


class SqliteSlotStore(OnSqlite):
    """`SlotStore` on a SQLite database."""

    async def take_slot(self, scope: str, holder: str, limit: int) -> bool:
        taken_at = to_millis(stored_now())

        def op(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                if conn.execute(_HELD, (scope, holder)).fetchone() is not None:
                    return True
                (held,) = conn.execute(_COUNT, (scope,)).fetchone()
                if held >= limit:
                    return False
                conn.execute(_TAKE, (scope, holder, taken_at))
                return True

        return await self._db.run(op)

    async def release_slots(self, holder: str) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            with immediate(conn):
                rows = conn.execute(
                    "DELETE FROM slots WHERE holder = ? RETURNING scope", (holder,)
                ).fetchall()
            return sorted(scope for (scope,) in rows)

        return await self._db.run(op)

    async def release_slot(self, scope: str, holder: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            sql = "DELETE FROM slots WHERE scope = ? AND holder = ?"
            return conn.execute(sql, (scope, holder)).rowcount == 1

        return await self._db.run(op)

    async def count_slots(self, scope: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            (held,) = conn.execute(_COUNT, (scope,)).fetchone()
            return int(held)

        return await self._db.run(op)

    async def find_slots(self, *, taken_before: datetime, limit: int = 100) -> list[Slot]:
        check_limit(limit)

        def op(conn: sqlite3.Connection) -> list[Slot]:
            rows = conn.execute(_OLDEST, (to_millis(taken_before), limit)).fetchall()
            return [
                Slot(scope=scope, holder=holder, taken_at=from_millis(taken_at))
                for scope, holder, taken_at in rows
            ]

        return await self._db.run(op)

    async def renew_slot(self, scope: str, holder: str, at: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE slots SET taken_at = ? WHERE scope = ? AND holder = ?"
            return conn.execute(sql, (to_millis(at), scope, holder)).rowcount == 1

        return await self._db.run(op)
