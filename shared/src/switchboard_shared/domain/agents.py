"""Agents: the internal keys customers use, and the provider routes behind them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # tenant_config imports Tier from here
    from switchboard_shared.domain.tenant_config import SessionDefaults


class Tier(StrEnum):
    """What a customer asks for instead of a provider: operators map tiers to routes."""

    BASIC = "basic"  # low cost, low latency
    ADVANCED = "advanced"  # quality


class Route(BaseModel):
    """One way to place an agent's calls: a provider, and who the agent is there."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    # The agent's id at the provider; None: the adapter sends the agent itself (prompt,
    # voice, initial message) where its provider accepts that.
    provider_agent_id: str | None = None
    from_number: str | None = None  # caller id in E.164; None: the provider's default
    # Among healthy routes of the same priority, the share of calls this one gets.
    weight: int = Field(default=1, ge=1, le=1000)
    # Lower is tried first; None: the route's position in the list.
    priority: int | None = Field(default=None, ge=0)
    # The tier this route serves; None: every tier.
    tier: Tier | None = None


class Agent(BaseModel):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str
    description: str = ""
    # None: the tenant's default language (GET /v1/config) applies.
    language: str | None = None
    enabled: bool = True
    # --- internal only: never in a response ----------------------------------------
    prompt: str | None = Field(default=None, max_length=32_768)
    initial_message: str | None = Field(default=None, max_length=2_000)
    voice: str | None = None  # a voice name of ours; each adapter maps it
    # Outcome fields to extract after the call (name -> what it means), where supported.
    analysis: dict[str, str] = Field(default_factory=dict)
    # None: the tenant's default `max_duration` (GET /v1/config) applies.
    max_duration_seconds: int | None = Field(default=None, ge=10)
    routes: list[Route] = Field(min_length=1)
    # Tenant names allowed to use the agent; None means every tenant.
    tenants: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_provider_is_one_route(cls, data: Any) -> Any:
        """Agents written before routes (`provider`, `provider_agent_id`, `from_number`)
        load as an agent with that one route."""
        if not isinstance(data, dict):
            return data
        if "provider" not in data:
            if "routes" not in data:
                raise ValueError("no routes: give routes, or the single provider fields")
            return data
        if "routes" in data:
            raise ValueError("give either routes or the single provider fields, not both")
        data = dict(data)
        route = {"provider": data.pop("provider")}
        for name in ("provider_agent_id", "from_number"):
            if name in data:
                route[name] = data.pop(name)
        data["routes"] = [route]
        return data

    def routes_for(self, tier: Tier | None) -> list[tuple[int, Route]]:
        """The routes serving `tier` (every route when None) with their positions, by
        priority (a route without one ranks by its position)."""
        chosen = [
            (i, r) for i, r in enumerate(self.routes) if tier is None or r.tier in (None, tier)
        ]
        return sorted(chosen, key=lambda pair: route_rank(*pair))

    def public_view(self, default_language: str) -> AgentView:
        """What a tenant sees; `default_language` is the tenant's, for an agent that
        leaves its language open."""
        return AgentView(
            key=self.key,
            name=self.name,
            description=self.description,
            language=self.language or default_language,
        )


def route_rank(position: int, route: Route) -> int:
    """A route's place in trial order: its priority, else its position."""
    return route.priority if route.priority is not None else position


class AgentView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "altynai",
                    "name": "Altynai",
                    "description": "Appointment reminders",
                    "language": "ky",
                }
            ]
        }
    )

    key: str
    name: str
    description: str
    language: str


@dataclass(frozen=True)
class AgentSpec:
    """The agent as a provider that takes it inline receives it, placeholders filled."""

    prompt: str | None
    initial_message: str | None
    voice: str | None
    language: str
    max_duration_seconds: int
    analysis: Mapping[str, str]


def agent_spec(agent: Agent, variables: Mapping[str, Any], defaults: SessionDefaults) -> AgentSpec:
    """The agent for one call: its own values, the tenant's defaults (`GET /v1/config`)
    where it has none."""
    return AgentSpec(
        prompt=fill_placeholders(agent.prompt or defaults.prompt, variables),
        initial_message=fill_placeholders(agent.initial_message, variables),
        voice=agent.voice,
        language=agent.language or defaults.language,
        max_duration_seconds=agent.max_duration_seconds or defaults.max_duration,
        analysis=dict(agent.analysis),
    )


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def fill_placeholders(text: str | None, variables: Mapping[str, Any]) -> str | None:
    """`{{name}}` replaced by the call's variable `name`; an unknown name stays as
    written, so a missing variable shows in the transcript rather than vanishing."""
    if text is None:
        return None
    return _PLACEHOLDER.sub(
        lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), text
    )
