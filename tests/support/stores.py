"""A started Store of either kind, for any test that needs one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from switchboard_shared.ports import Store

StoreKind = Literal["sqlite", "mongo"]
STORE_KINDS: tuple[StoreKind, ...] = ("sqlite", "mongo")


@contextlib.asynccontextmanager
async def open_store(
    kind: StoreKind, *, tmp_path: Path, mongodb_url: str | None = None
) -> AsyncIterator[Store]:
    """Yields a started store, closed afterwards.

    SQLite: a fresh file under `tmp_path`. Mongo: a database of its own on `mongodb_url`
    (the `mongodb_url` fixture), dropped afterwards.
    """
    if kind == "sqlite":
        from switchboard_shared.adapters.store.sqlite import SqliteStore

        sqlite_store = SqliteStore(tmp_path / f"store-{uuid.uuid4().hex[:8]}.db")
        await sqlite_store.start()
        try:
            yield sqlite_store
        finally:
            await sqlite_store.close()
        return

    if mongodb_url is None:
        raise ValueError("open_store('mongo') needs the mongodb_url fixture")
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore

    database = f"t{uuid.uuid4().hex[:12]}"
    mongo_store = MongoStore(mongodb_url, database)
    await mongo_store.start()
    try:
        yield mongo_store
    finally:
        await mongo_store.close()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
        try:
            await client.drop_database(database)
        finally:
            await client.close()
