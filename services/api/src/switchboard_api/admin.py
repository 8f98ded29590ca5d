"""Operator commands: tenants, API keys and agents, run against the store.

`add_admin_commands` registers `tenants create`, `keys create|revoke|list` and
`agents load|list` on the `switchboard` CLI. Each handler is `async (args, store) -> int`
(the exit status), stored as `args.handler`; the CLI opens the store and calls it.
Results go to stdout, problems to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.phone import is_e164
from switchboard_shared.domain.tenants import Tenant, hash_api_key, new_api_key
from switchboard_shared.ports import AlreadyExists, Store

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Store], Awaitable[int]]

DEMO_TENANT = "demo"
# Exit statuses: 1 the operation failed (not found, taken), 2 the input is invalid.
EXIT_FAILED = 1
EXIT_INVALID = 2


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# --- tenants ---------------------------------------------------------------------------


async def tenants_create(args: argparse.Namespace, store: Store) -> int:
    """Create tenant `args.name`; prints its id."""
    try:
        tenant = await store.create_tenant(Tenant(name=args.name))
    except AlreadyExists:
        _err(f"a tenant named '{args.name}' already exists")
        return EXIT_FAILED
    print(f"created tenant {tenant.name} ({tenant.tenant_id})")
    return 0


# --- keys -----------------------------------------------------------------------------


async def _tenant_named(store: Store, name: str) -> Tenant | None:
    tenant = await store.get_tenant_by_name(name)
    if tenant is None:
        _err(f"no tenant named '{name}'")
    return tenant


async def keys_create(args: argparse.Namespace, store: Store) -> int:
    """Create an API key for tenant `args.tenant`; prints the raw key, the only time."""
    tenant = await _tenant_named(store, args.tenant)
    if tenant is None:
        return EXIT_FAILED
    raw, key = new_api_key(tenant.tenant_id)
    await store.add_api_key(key)
    print(f"key id: {key.key_id}")
    print(f"api key: {raw}")
    print("store the key now: it is not shown again (only its hash is kept)")
    return 0


async def keys_revoke(args: argparse.Namespace, store: Store) -> int:
    """Revoke key `args.key_id`; requests with it get 401 from then on."""
    if not await store.revoke_api_key(args.key_id):
        _err(f"no live key '{args.key_id}'")
        return EXIT_FAILED
    print(f"revoked {args.key_id}")
    return 0


async def keys_list(args: argparse.Namespace, store: Store) -> int:
    """List the keys of tenant `args.tenant`: id, hint, creation, revocation."""
    tenant = await _tenant_named(store, args.tenant)
    if tenant is None:
        return EXIT_FAILED
    print(f"{'KEY ID':<22} {'HINT':<9} {'CREATED':<26} REVOKED")
    for key in await store.list_api_keys(tenant.tenant_id):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-"
        created = key.created_at.isoformat(timespec="seconds")
        print(f"{key.key_id:<22} {key.hint + '…':<9} {created:<26} {revoked}")
    return 0


# --- agents ---------------------------------------------------------------------------


class AgentFileError(ValueError):
    """An agents file that cannot be loaded; the message says where and why."""


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
        raise AgentFileError(f"{path}: invalid YAML: {exc}") from exc
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
        if agent.from_number and not is_e164(agent.from_number):
            problems.append(f"{label}: from_number: not a valid E.164 number")
        if any(a.key == agent.key for a in agents):
            problems.append(f"{label}: key '{agent.key}' appears twice")
        agents.append(agent)
    if problems:
        raise AgentFileError(f"{path}: " + "; ".join(problems))
    return agents


async def load_agents_file(store: Store, path: Path | str) -> int:
    """Upsert every agent of the YAML file at `path`; returns how many.

    Raises AgentFileError (and stores nothing) when any entry is invalid.
    """
    agents = read_agents_file(Path(path))
    for agent in agents:
        await store.upsert_agent(agent)
    return len(agents)


async def agents_load(args: argparse.Namespace, store: Store) -> int:
    """Upsert every agent of the YAML file `args.file` (all or nothing on bad input)."""
    try:
        agents = read_agents_file(Path(args.file))
    except AgentFileError as exc:
        _err(str(exc))
        return EXIT_INVALID
    for agent in agents:
        await store.upsert_agent(agent)
        print(f"loaded agent {agent.key} ({'enabled' if agent.enabled else 'disabled'})")
    return 0


async def agents_list(args: argparse.Namespace, store: Store) -> int:
    """List every agent with its routing (operator view: provider fields included)."""
    print(f"{'KEY':<16} {'ENABLED':<8} {'LANG':<5} {'PROVIDER':<12} {'TENANTS':<20} NAME")
    for agent in await store.list_agents():
        tenants = ",".join(agent.tenants) if agent.tenants is not None else "*"
        print(
            f"{agent.key:<16} {'yes' if agent.enabled else 'no':<8} {agent.language:<5} "
            f"{agent.provider:<12} {tenants:<20} {agent.name}"
        )
    return 0


# --- all-in-one mode -----------------------------------------------------------------


async def ensure_demo_tenant(store: Store, raw_key: str | None) -> str:
    """Make sure tenant `demo` exists and holds an API key; returns that raw key.

    With `raw_key` (e.g. SWITCHBOARD_DEV_API_KEY) the key is added unless already
    stored, so restarts do not duplicate it; without, a new key is generated. Raises
    ValueError if `raw_key` belongs to another tenant.
    """
    tenant = await store.get_tenant_by_name(DEMO_TENANT)
    if tenant is None:
        try:
            tenant = await store.create_tenant(Tenant(name=DEMO_TENANT))
        except AlreadyExists:  # another process created it meanwhile
            tenant = await store.get_tenant_by_name(DEMO_TENANT)
            assert tenant is not None
    if raw_key:
        existing = await store.find_api_key(hash_api_key(raw_key))
        if existing is not None:
            if existing.tenant_id != tenant.tenant_id:
                raise ValueError("the given API key belongs to another tenant")
            if existing.revoked_at is not None:
                log.warning(
                    "the demo API key %s… is revoked: requests with it get 401", raw_key[:7]
                )
            return raw_key
    raw, key = new_api_key(tenant.tenant_id, raw_key)
    await store.add_api_key(key)
    return raw


# --- argparse wiring ------------------------------------------------------------------


def _command(
    group: argparse._SubParsersAction, name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def add_admin_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `tenants`, `keys` and `agents` with their subcommands on `subparsers`."""
    tenants = subparsers.add_parser("tenants", help="manage tenants")
    tenant_cmds = tenants.add_subparsers(dest="tenants_command", required=True)
    create = _command(tenant_cmds, "create", tenants_create, "create a tenant")
    create.add_argument("name", help="unique tenant name")

    keys = subparsers.add_parser("keys", help="manage API keys")
    key_cmds = keys.add_subparsers(dest="keys_command", required=True)
    create_key = _command(key_cmds, "create", keys_create, "create an API key (printed once)")
    create_key.add_argument("--tenant", required=True, help="tenant name")
    revoke = _command(key_cmds, "revoke", keys_revoke, "revoke an API key")
    revoke.add_argument("key_id", help="the key id (key_…), as `keys list` shows")
    list_keys = _command(key_cmds, "list", keys_list, "list a tenant's API keys")
    list_keys.add_argument("--tenant", required=True, help="tenant name")

    agents = subparsers.add_parser("agents", help="manage agents")
    agent_cmds = agents.add_subparsers(dest="agents_command", required=True)
    load = _command(agent_cmds, "load", agents_load, "create or update agents from YAML")
    load.add_argument("file", help="YAML file, e.g. deploy/agents.example.yaml")
    _command(agent_cmds, "list", agents_list, "list agents and their routing")
