"""The SQLite connections a store uses: the writer, on the one worker thread that owns
it, and a reader for point lookups on the event loop.

Every read-modify-write runs in a `BEGIN IMMEDIATE` transaction (`immediate`), which
takes the database's write lock up front, so conditional updates are atomic across
connections and processes; WAL lets readers go on meanwhile, and `busy_timeout` makes
writers queue rather than fail. Writes and scans run on the worker thread, so the event
loop never waits on disk or on a lock. A lookup by key (`read`) runs on the loop itself:
in WAL a reader takes no lock, the page is in the cache, and the two thread hand-offs it
saves cost more than the lookup (bench/RESULTS.md); one that finds the file busy goes to
the worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from switchboard_shared.adapters.store.sqlite.schema import create_schema
from switchboard_shared.ports import StoreError

T = TypeVar("T")


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction holding the write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteDatabase:
    """The SQLite file at `path` (parent directories are created) and the thread that
    runs every operation on it."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Open the file (creating it and its directory), switch to WAL, create tables."""
        if self._conn is not None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self._path.parent}: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._open)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreError(f"cannot open {self._path}: {exc}") from exc
        self._reader = self._open_reader()

    def _open_reader(self) -> sqlite3.Connection:
        # A short busy timeout: this one blocks the event loop while it waits.
        reader = sqlite3.connect(
            self._path, timeout=0.05, isolation_level=None, check_same_thread=False
        )
        reader.execute("PRAGMA query_only = ON")
        return reader

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only the worker thread uses it, but close() joins
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL survives a process crash; only power loss can lose the
            # last commits, and it never corrupts the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            with immediate(conn):
                create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        conn, executor, reader = self._conn, self._executor, self._reader
        self._conn, self._executor, self._reader = None, None, None
        if reader is not None:
            reader.close()
        if conn is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=True)

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` on the worker thread; driver errors become StoreError."""
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise StoreError("the SQLite store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, operation, conn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    async def read(self, lookup: Callable[[sqlite3.Connection], T]) -> T:
        """Run `lookup`, a read of a few rows by key, on the reading connection on the
        event loop; if the file is busy (a checkpoint, a writer in another process
        recovering), on the worker thread instead. Driver errors become StoreError."""
        reader = self._reader
        if reader is None:
            raise StoreError("the SQLite store is not started")
        try:
            return lookup(reader)
        except sqlite3.OperationalError:
            return await self.run(lookup)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc


class OnSqlite:
    """Base of each aggregate's store: they all run on one shared `SqliteDatabase`."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database
