"""The operators' agents in SQLite (the `AgentStore` port)."""

from __future__ import annotations

from switchboard_shared.adapters.store.common.records import stored_document
from switchboard_shared.adapters.store.sqlite.connection import OnSqlite
from switchboard_shared.adapters.store.sqlite.rows import AGENTS, select_all, select_one
from switchboard_shared.domain.agents import Agent

_UPSERT = (
    "INSERT INTO agents (key, doc) VALUES (:key, :doc) "
    "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc"
)


class SqliteAgentStore(OnSqlite):
    """`AgentStore` on a SQLite database."""

    async def upsert_agent(self, agent: Agent) -> None:
        row = AGENTS.row(stored_document(agent))
        await self._db.run(lambda c: c.execute(_UPSERT, row))

    async def get_agent(self, key: str) -> Agent | None:
        return await self._db.read(lambda c: select_one(c, AGENTS, "key = ?", (key,)))

    async def list_agents(self) -> list[Agent]:
        sql = "SELECT doc FROM agents ORDER BY key"
        return await self._db.run(lambda c: select_all(c, Agent, sql, ()))
