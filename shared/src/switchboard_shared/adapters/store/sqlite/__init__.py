"""The embedded Store on SQLite: `schema` (tables, indexes, added columns), `rows`
(record <-> row), `connection` (the one connection and its thread), one module per
aggregate (`tenants`, `agents`, `calls`, `webhooks`), composed in `store`."""

from switchboard_shared.adapters.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
