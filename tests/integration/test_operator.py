"""The operator functions the CLI, the API's agents loader and the all-in-one mode share,
on a real SQLite store: what the CLI tests cannot reach through the command line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_api.auth import tenant_for_key
from switchboard_shared.ports import Store
from switchboard_shared.runtime.operator import (
    InvalidInput,
    OperatorError,
    create_api_key,
    create_tenant,
    ensure_demo_tenant,
    ensure_tenant,
    load_agents_file,
    store_api_key,
)
from tests.support.api_client import AGENTS_FILE
from tests.support.stores import open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path=tmp_path) as opened:
        yield opened


# --- all-in-one demo tenant -----------------------------------------------------------


async def test_ensure_demo_tenant_generates_a_working_key(store: Store) -> None:
    raw = await ensure_demo_tenant(store, None)
    tenant = await tenant_for_key(store, raw)
    assert tenant is not None
    assert tenant.name == "demo"
    again = await ensure_demo_tenant(store, None)  # a restart without a configured key
    assert again != raw
    assert (await tenant_for_key(store, again)) == tenant


async def test_ensure_demo_tenant_keeps_a_given_key_without_duplicates(store: Store) -> None:
    assert await ensure_demo_tenant(store, "sk_dev_local_key") == "sk_dev_local_key"
    assert await ensure_demo_tenant(store, "sk_dev_local_key") == "sk_dev_local_key"
    tenant = await store.get_tenant_by_name("demo")
    assert tenant is not None
    assert len(await store.list_api_keys(tenant.tenant_id)) == 1
    assert await tenant_for_key(store, "sk_dev_local_key") == tenant


async def test_ensure_demo_tenant_refuses_another_tenants_key(store: Store) -> None:
    acme = await create_tenant(store, "acme")
    raw, _ = await create_api_key(store, acme)
    with pytest.raises(OperatorError, match="another tenant"):
        await ensure_demo_tenant(store, raw)


async def test_ensure_demo_tenant_refuses_a_malformed_key(store: Store) -> None:
    with pytest.raises(InvalidInput, match="sk_"):
        await ensure_demo_tenant(store, "demo")
    demo = await store.get_tenant_by_name("demo")
    assert demo is None or await store.list_api_keys(demo.tenant_id) == []


# --- concurrent bootstraps ------------------------------------------------------------


async def test_ensure_and_store_are_idempotent_when_run_at_once(store: Store) -> None:
    """Two bootstrap jobs at the same moment end with one tenant and one key."""
    tenants = await asyncio.gather(*(ensure_tenant(store, "demo") for _ in range(5)))
    assert len({t.tenant_id for t, _ in tenants}) == 1
    assert sum(created for _, created in tenants) == 1
    tenant = tenants[0][0]
    stored = await asyncio.gather(
        *(store_api_key(store, tenant, "sk_demo_switchboard") for _ in range(5))
    )
    assert len({key.key_id for key, _ in stored}) == 1
    assert len(await store.list_api_keys(tenant.tenant_id)) == 1


# --- the API's start-up loader --------------------------------------------------------


async def test_load_agents_file_counts_what_it_stored(store: Store) -> None:
    assert await load_agents_file(store, AGENTS_FILE) == 3
    assert {a.key for a in await store.list_agents()} == {"altynai", "akylai", "altai"}
