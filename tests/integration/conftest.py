"""Fixtures the store contract tests share: a started store of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_shared.ports import Store
from tests.support.stores import STORE_KINDS, StoreKind, open_store


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    kind: StoreKind = request.param
    return kind


@pytest.fixture
async def store(
    store_kind: StoreKind, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    url = request.getfixturevalue("mongodb_url") if store_kind == "mongo" else None
    async with open_store(store_kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started
