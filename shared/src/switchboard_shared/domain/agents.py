"""Agents: the internal keys customers use, and the provider routing behind them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Agent(BaseModel):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str
    description: str = ""
    language: str = "en"
    enabled: bool = True
    # --- internal only: never in a response ----------------------------------------
    provider: str
    provider_agent_id: str
    from_number: str | None = None
    max_duration_seconds: int = Field(default=600, ge=10)
    # Tenant names allowed to use the agent; None means every tenant.
    tenants: list[str] | None = None

    def public_view(self) -> AgentView:
        return AgentView(
            key=self.key, name=self.name, description=self.description, language=self.language
        )


class AgentView(BaseModel):
    key: str
    name: str
    description: str
    language: str
