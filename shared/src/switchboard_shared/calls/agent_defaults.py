"""A call's agent as it is dialed: the agent's own values, the tenant's configuration
(`GET /v1/config`) where the agent leaves them open."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard_shared.domain.agents import Agent, AgentSpec, agent_spec
from switchboard_shared.domain.calls import Call
from switchboard_shared.domain.tenant_config import DEFAULT_MAX_DURATION, TenantConfig
from switchboard_shared.ports import ConfigStore


async def tenant_config(store: ConfigStore, tenant_id: str) -> TenantConfig:
    """The tenant's stored configuration, or the defaults when it never changed them."""
    stored = await store.get_config(tenant_id)
    return stored or TenantConfig.defaults_for(tenant_id)


async def spec_for_tenant(
    store: ConfigStore, tenant_id: str, agent: Agent, variables: Mapping[str, Any]
) -> AgentSpec:
    """The agent for one of the tenant's calls; the configuration is read only when the
    agent leaves something open (a read per dial otherwise)."""
    leaves_open = None in (agent.prompt, agent.language, agent.max_duration_seconds)
    config = (
        await tenant_config(store, tenant_id)
        if leaves_open
        else TenantConfig.defaults_for(tenant_id)  # not read: the agent sets everything
    )
    return agent_spec(agent, variables, config)


def max_duration_of(call: Call, agent: Agent | None) -> int:
    """The longest the call's attempt may last: fixed at its claim; for a call claimed
    before that was recorded, its agent's, else the default."""
    if call.max_duration_seconds is not None:
        return call.max_duration_seconds
    if agent is not None and agent.max_duration_seconds is not None:
        return agent.max_duration_seconds
    return DEFAULT_MAX_DURATION
