"""The MongoDB client a store uses, through PyMongo's native async API
(`AsyncMongoClient`). Datetimes are read back tz-aware in UTC."""

from __future__ import annotations

from datetime import UTC

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from switchboard_shared.adapters.store.mongo.documents import Document, driver_errors
from switchboard_shared.adapters.store.mongo.schema import create_indexes
from switchboard_shared.ports import StoreError


class MongoDatabase:
    """Database `database` on the MongoDB at `url`, once started."""

    def __init__(self, url: str, database: str, *, timeout_ms: int = 5_000) -> None:
        self._url = url
        self._database_name = database
        self._timeout_ms = timeout_ms
        self._client: AsyncMongoClient[Document] | None = None
        self._db: AsyncDatabase[Document] | None = None

    async def start(self) -> None:
        """Connect and create every index (idempotent: existing ones are kept)."""
        if self._client is not None:
            return
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            self._url,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._timeout_ms,
            connectTimeoutMS=self._timeout_ms,
        )
        db = client.get_database(
            self._database_name, codec_options=CodecOptions(tz_aware=True, tzinfo=UTC)
        )
        try:
            with driver_errors():
                await create_indexes(db)
        except BaseException:
            await client.close()
            raise
        self._client, self._db = client, db

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        with driver_errors():
            await self._database.command("ping")

    @property
    def _database(self) -> AsyncDatabase[Document]:
        if self._db is None:
            raise StoreError("the MongoDB store is not started")
        return self._db

    @property
    def client(self) -> AsyncMongoClient[Document]:
        """The started client (for sessions and transactions); StoreError before."""
        if self._client is None:
            raise StoreError("the MongoDB store is not started")
        return self._client

    def collection(self, name: str) -> AsyncCollection[Document]:
        """Collection `name`; StoreError when the store is not started."""
        return self._database[name]


class OnMongo:
    """Base of each aggregate's store: they all use one shared `MongoDatabase`."""

    def __init__(self, database: MongoDatabase) -> None:
        self._db = database
