"""The operators' agents in MongoDB (the `AgentStore` port)."""

from __future__ import annotations

from pymongo import ASCENDING

from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.domain.agents import Agent


class MongoAgentStore(OnMongo):
    """`AgentStore` on a MongoDB database."""

    async def upsert_agent(self, agent: Agent) -> None:
        with driver_errors():
            await self._db.collection("agents").replace_one(
                {"_id": agent.key}, to_document(agent, agent.key), upsert=True
            )

    async def get_agent(self, key: str) -> Agent | None:
        with driver_errors():
            found = await self._db.collection("agents").find_one({"_id": key})
        return from_document(Agent, found)

    async def list_agents(self) -> list[Agent]:
        with driver_errors():
            cursor = self._db.collection("agents").find({}, sort=[("key", ASCENDING)])
            return [Agent.model_validate(strip_id(d)) async for d in cursor]
