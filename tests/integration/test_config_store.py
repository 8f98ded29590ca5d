"""The ConfigStore contract, run against both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.tenant_config import SessionDefaults, TenantConfig
from switchboard_shared.ports import Store
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started


async def test_a_tenant_without_a_config_has_none_stored(store: Store) -> None:
    assert await store.get_config("tenant-new") is None


async def test_update_sets_the_given_fields_over_the_defaults(store: Store) -> None:
    changes = SessionDefaults(tier=Tier.ADVANCED, max_duration=600)
    updated = await store.update_config("tenant-a", changes, {"tier", "max_duration"})
    defaults = TenantConfig.defaults_for("tenant-a")
    assert (updated.tier, updated.max_duration) == (Tier.ADVANCED, 600)
    assert (updated.prompt, updated.language) == (defaults.prompt, defaults.language)
    assert await store.get_config("tenant-a") == updated
    assert await store.get_config("tenant-b") is None


async def test_a_later_update_keeps_the_fields_it_does_not_name(store: Store) -> None:
    await store.update_config("tenant-a", SessionDefaults(language="ky"), {"language"})
    updated = await store.update_config("tenant-a", SessionDefaults(prompt="Be brief."), {"prompt"})
    assert (updated.language, updated.prompt) == ("ky", "Be brief.")


async def test_concurrent_updates_of_different_fields_both_hold(store: Store) -> None:
    await asyncio.gather(
        store.update_config("tenant-c", SessionDefaults(language="de"), {"language"}),
        store.update_config("tenant-c", SessionDefaults(max_duration=42), {"max_duration"}),
        store.update_config("tenant-c", SessionDefaults(tier=Tier.ADVANCED), {"tier"}),
    )
    stored = await store.get_config("tenant-c")
    assert stored is not None
    assert (stored.language, stored.max_duration, stored.tier) == ("de", 42, Tier.ADVANCED)
