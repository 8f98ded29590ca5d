"""The Store on MongoDB: `schema` (collections and indexes), `documents` (record <->
document, driver errors), `queries` (the listing and scheduler finds), `connection`
(the client), one module per aggregate (`tenants`, `agents`, `calls`, `webhooks`),
composed in `store`."""

from switchboard_shared.adapters.store.mongo.store import MongoStore

__all__ = ["MongoStore"]
