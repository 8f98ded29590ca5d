"""What failover keeps in the store, in both adapters: provider breakers (a compare-and-set
on `version`) and the routes each call tried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchboard_shared.domain.breakers import BreakerState, ProviderBreaker
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, RouteAttempt, RouteOutcome
from switchboard_shared.ports import Store
from tests.support.stores import STORE_KINDS, StoreKind, open_store


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started


async def test_first_save_creates_and_later_saves_need_the_current_version(store: Store) -> None:
    assert await store.get_breaker("vocode") is None
    opened_at = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    first = await store.save_breaker(
        ProviderBreaker(provider="vocode", state=BreakerState.OPEN, opened_at=opened_at)
    )
    assert first is not None
    assert first.version == 1
    assert first.opened_at == opened_at.replace(microsecond=123000)
    assert await store.get_breaker("vocode") == first

    # A replica that read nothing (version 0) loses to the one that created it.
    assert await store.save_breaker(ProviderBreaker(provider="vocode")) is None

    closed = await store.save_breaker(first.model_copy(update={"state": BreakerState.CLOSED}))
    assert closed is not None
    assert closed.version == 2
    # A write based on the stale version 1 is refused and changes nothing.
    assert await store.save_breaker(first) is None
    assert await store.get_breaker("vocode") == closed


async def test_lists_every_provider_in_name_order(store: Store) -> None:
    for name in ("voxpria", "simulator", "vocode"):
        assert await store.save_breaker(ProviderBreaker(provider=name)) is not None
    assert [b.provider for b in await store.list_breakers()] == ["simulator", "vocode", "voxpria"]


async def test_a_call_keeps_the_routes_it_tried(store: Store) -> None:
    call, _ = await store.insert_call(Call(tenant_id="t", agent="a", phone="+15005550004"), 60)
    at = datetime(2026, 1, 1, 12, 0, 0, 987654, tzinfo=UTC)
    tried = [
        RouteAttempt(route=0, provider="vocode", outcome=RouteOutcome.UNREACHABLE, at=at),
        RouteAttempt(route=1, provider="simulator", outcome=RouteOutcome.ACCEPTED, at=at),
    ]
    updated = await store.update_call(call.call_id, CallChanges(route_attempts=tried))
    assert updated is not None
    read = await store.get_call(call.call_id)
    assert read is not None
    assert read == updated
    assert [(a.provider, a.outcome) for a in read.route_attempts] == [
        ("vocode", RouteOutcome.UNREACHABLE),
        ("simulator", RouteOutcome.ACCEPTED),
    ]
    assert read.route_attempts[0].at == at.replace(microsecond=987000)
