"""What an operator does to the store: tenants, their API keys, and agents from YAML.

Plain functions over a `Store`, shared by the `switchboard` CLI, the API's start-up
agents loader and the all-in-one mode. Two kinds of failure, so a caller can tell the
operator what to do: `InvalidInput` (the input itself is wrong; nothing was changed) and
`OperatorError` (the request conflicts with what is stored). The store's own
`StoreError` (unreachable, failed) passes through.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.phone import is_e164
from switchboard_shared.domain.tenants import (
    API_KEY_PREFIX,
    ApiKey,
    Tenant,
    hash_api_key,
    new_api_key,
)
from switchboard_shared.ports import AlreadyExists, Store

log = logging.getLogger(__name__)

DEMO_TENANT = "demo"
# Our keys are `sk_` + 43 URL-safe characters; an operator-chosen one (a demo key, a key
# kept in a secret manager) must at least look like one, so a typo or an empty secret is
# not stored as a key that nobody can use.
API_KEY_PATTERN = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_-]{8,200}")
API_KEY_FORMAT = f"'{API_KEY_PREFIX}' then 8 to 200 letters, digits, '_' or '-'"


class InvalidInput(ValueError):
    """The operator's input is wrong (a bad file, a malformed key); nothing was changed."""


class AgentFileError(InvalidInput):
    """An agents file that cannot be loaded; the message says where and why."""


class OperatorError(Exception):
    """The request conflicts with the stored state; the message says how."""


# --- tenants ---------------------------------------------------------------------------


async def create_tenant(store: Store, name: str) -> Tenant:
    """Create tenant `name`. Raises OperatorError when the name is taken."""
    try:
        return await store.create_tenant(Tenant(name=name))
    except AlreadyExists:
        raise OperatorError(f"a tenant named '{name}' already exists") from None


async def ensure_tenant(store: Store, name: str) -> tuple[Tenant, bool]:
    """The tenant named `name`, created if missing; returns (tenant, created).

    Idempotent, also when another process creates it at the same moment.
    """
    tenant = await store.get_tenant_by_name(name)
    if tenant is not None:
        return tenant, False
    try:
        return await store.create_tenant(Tenant(name=name)), True
    except AlreadyExists:  # created meanwhile by another process
        tenant = await store.get_tenant_by_name(name)
        if tenant is None:
            raise
        return tenant, False


async def tenant_named(store: Store, name: str) -> Tenant:
    """The tenant named `name`. Raises OperatorError when there is none."""
    tenant = await store.get_tenant_by_name(name)
    if tenant is None:
        raise OperatorError(f"no tenant named '{name}'")
    return tenant


async def set_tenant_limits(store: Store, name: str, *, max_concurrent_calls: int) -> Tenant:
    """Set the concurrent calls tenant `name` may have placed and live at once (calls
    beyond it wait in `queued`). Raises OperatorError when there is no such tenant."""
    tenant = await tenant_named(store, name)
    updated = await store.set_tenant_limits(
        tenant.tenant_id, max_concurrent_calls=max_concurrent_calls
    )
    if updated is None:
        raise OperatorError(f"no tenant named '{name}'")
    return updated


# --- API keys --------------------------------------------------------------------------


async def create_api_key(store: Store, tenant: Tenant) -> tuple[str, ApiKey]:
    """Generate a new key for `tenant`; returns the raw key (show it once) and its record.

    Only the key's hash is stored.
    """
    raw, key = new_api_key(tenant.tenant_id)
    await store.add_api_key(key)
    return raw, key


def check_api_key_format(raw_key: str) -> None:
    """Raises InvalidInput unless `raw_key` looks like one of our keys (API_KEY_FORMAT).

    The message never contains the key.
    """
    if not API_KEY_PATTERN.fullmatch(raw_key):
        raise InvalidInput(f"not a Switchboard API key: expected {API_KEY_FORMAT}")


async def store_api_key(store: Store, tenant: Tenant, raw_key: str) -> tuple[ApiKey, bool]:
    """Store the operator-chosen `raw_key` for `tenant`; returns (record, created).

    Idempotent: when that exact key is already stored for `tenant` its record is
    returned (revoked or not: the caller decides) and nothing changes. Raises
    InvalidInput for a malformed key and OperatorError when the key is another tenant's.
    """
    check_api_key_format(raw_key)
    digest = hash_api_key(raw_key)
    existing = await store.find_api_key(digest)
    if existing is None:
        _, key = new_api_key(tenant.tenant_id, raw_key)
        try:
            return await store.add_api_key(key), True
        except AlreadyExists:  # stored meanwhile by another process
            existing = await store.find_api_key(digest)
            if existing is None:
                raise
    if existing.tenant_id != tenant.tenant_id:
        raise OperatorError("that API key belongs to another tenant")
    return existing, False


async def revoke_api_key(store: Store, key_id: str) -> None:
    """Revoke key `key_id`: requests with it get 401 from then on.

    Raises OperatorError when there is no live key with that id.
    """
    if not await store.revoke_api_key(key_id):
        raise OperatorError(f"no live key '{key_id}'")


async def ensure_demo_tenant(store: Store, raw_key: str | None) -> str:
    """Make sure tenant `demo` exists and holds an API key; returns that raw key.

    With `raw_key` (SWITCHBOARD_DEV_API_KEY) the key is stored unless it already is, so
    restarts do not duplicate it; without, a new key is generated. Raises InvalidInput
    for a malformed key and OperatorError when it is another tenant's.
    """
    tenant, _ = await ensure_tenant(store, DEMO_TENANT)
    if not raw_key:
        raw, _ = await create_api_key(store, tenant)
        return raw
    key, _ = await store_api_key(store, tenant, raw_key)
    if key.revoked_at is not None:
        log.warning("the demo API key %s… is revoked: requests with it get 401", key.hint)
    return raw_key


# --- agents ----------------------------------------------------------------------------


def read_agents_file(path: Path) -> list[Agent]:
    """Parse and validate an agents YAML file (`agents:` list, or a bare list).

    Validates everything before returning, so a bad file changes nothing. Raises
    AgentFileError naming the file, the entry and the problem.
    """
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise AgentFileError(f"{path}: invalid YAML{_yaml_problem(exc)}") from exc
    entries = document.get("agents") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise AgentFileError(f"{path}: expected a non-empty list under 'agents:'")
    agents: list[Agent] = []
    problems: list[str] = []
    for index, entry in enumerate(entries, start=1):
        label = f"agent #{index}"
        if isinstance(entry, dict) and entry.get("key"):
            label += f" ({entry['key']})"
        try:
            agent = Agent.model_validate(entry)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "entry"
                problems.append(f"{label}: {field}: {error['msg']}")
            continue
        problems.extend(f"{label}: {problem}" for problem in _route_problems(agent))
        if any(a.key == agent.key for a in agents):
            problems.append(f"{label}: key '{agent.key}' appears twice")
        agents.append(agent)
    if problems:
        raise AgentFileError(f"{path}: " + "; ".join(problems))
    return agents


def _route_problems(agent: Agent) -> list[str]:
    """What the model cannot check alone: each route's provider is one we have an adapter
    for (a call adapter, or a browser-session one), its number is E.164, and it names the
    provider's agent unless the adapter can send the agent itself (or, for a session
    provider, the operators' `session_provider_agent_id` applies)."""
    from switchboard_shared.adapters.providers import ADAPTERS, takes_inline_agent
    from switchboard_shared.adapters.providers.convai import SESSION_PROVIDERS

    problems: list[str] = []
    for index, route in enumerate(agent.routes):
        where = f"routes.{index}"
        adapter = ADAPTERS.get(route.provider)
        if adapter is None:
            # A session-only provider is fine: the dialer skips its routes.
            if route.provider not in SESSION_PROVIDERS:
                known = ", ".join(sorted({*ADAPTERS, *SESSION_PROVIDERS}))
                problems.append(f"{where}.provider: unknown provider {route.provider!r} ({known})")
        elif route.provider_agent_id is None and not takes_inline_agent(route.provider):
            problems.append(
                f"{where}.provider_agent_id: required for {route.provider} "
                "(of the adapters, only vocode takes the agent inline)"
            )
        if route.from_number and not is_e164(route.from_number):
            problems.append(f"{where}.from_number: not a valid E.164 number")
    return problems


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what, on one line: ` at line 2, column 3: expected ',' or ']'`."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return f": {error}"
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = ": ".join(filter(None, [error.context, error.problem])) or "malformed"
    return f"{where}: {what}"


async def upsert_agents(store: Store, agents: list[Agent]) -> None:
    """Create or update each agent by its key."""
    for agent in agents:
        await store.upsert_agent(agent)


async def load_agents_file(store: Store, path: Path | str) -> int:
    """Upsert every agent of the YAML file at `path`; returns how many.

    Raises AgentFileError (and stores nothing) when any entry is invalid.
    """
    agents = read_agents_file(Path(path))
    await upsert_agents(store, agents)
    return len(agents)
