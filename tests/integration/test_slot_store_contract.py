"""The slot contract (ports.SlotStore), the calls waiting for a slot (`find_calls` by
`waiting_lane` / `waiting_before`) and the tenants' limits, on every adapter: SQLite and
MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.domain.tenants import DEFAULT_MAX_CONCURRENT_CALLS, Tenant
from switchboard_shared.ports import Store
from tests.support.stores import StoreKind

pytestmark = pytest.mark.timeout(60)

TTL = 3600.0


def ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# --- slots -----------------------------------------------------------------------------------


async def test_slots_are_taken_up_to_the_limit(store: Store) -> None:
    assert [await store.take_slot("tenant-a", f"call-{i}", 3) for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert await store.count_slots("tenant-a") == 3


async def test_a_holder_takes_one_slot_of_a_scope_however_often_it_asks(store: Store) -> None:
    assert await store.take_slot("tenant-a", "call-1", 2)
    assert await store.take_slot("tenant-a", "call-1", 2)
    assert await store.count_slots("tenant-a") == 1
    assert await store.take_slot("tenant-a", "call-2", 2)
    # Full, yet a holder asking again still holds its slot.
    assert await store.take_slot("tenant-a", "call-1", 2)
    assert await store.count_slots("tenant-a") == 2


async def test_scopes_are_independent(store: Store) -> None:
    assert await store.take_slot("tenant-a", "call-1", 1)
    assert not await store.take_slot("tenant-a", "call-2", 1)
    assert await store.take_slot("tenant-b", "call-2", 1)
    # One holder may hold a slot in each of several scopes.
    assert await store.take_slot("provider-x", "call-1", 1)
    assert await store.count_slots("tenant-a") == 1
    assert await store.count_slots("tenant-b") == 1
    assert await store.count_slots("provider-x") == 1
    assert await store.count_slots("nobody") == 0


async def test_releasing_a_slot_frees_it_for_another_holder(store: Store) -> None:
    assert await store.take_slot("tenant-a", "call-1", 1)
    assert await store.take_slot("provider-x", "call-1", 5)
    assert not await store.take_slot("tenant-a", "call-2", 1)

    assert await store.release_slot("tenant-a", "call-1")
    assert not await store.release_slot("tenant-a", "call-1")
    assert not await store.release_slot("tenant-a", "never-held")
    assert await store.count_slots("tenant-a") == 0
    assert await store.take_slot("tenant-a", "call-2", 1)

    assert await store.take_slot("tenant-b", "call-1", 5)
    assert await store.release_slots("call-1") == ["provider-x", "tenant-b"]
    assert await store.release_slots("call-1") == []
    assert await store.count_slots("provider-x") == 0
    assert await store.count_slots("tenant-b") == 0
    assert await store.count_slots("tenant-a") == 1  # call-2's slot stays


async def test_concurrent_takers_never_exceed_the_limit(store: Store) -> None:
    taken = await asyncio.gather(*(store.take_slot("tenant-a", f"call-{i}", 7) for i in range(40)))
    assert taken.count(True) == 7
    assert await store.count_slots("tenant-a") == 7


async def test_concurrent_takes_by_one_holder_take_one_slot(store: Store) -> None:
    taken = await asyncio.gather(*(store.take_slot("tenant-a", "call-1", 3) for _ in range(10)))
    assert all(taken)
    assert await store.count_slots("tenant-a") == 1


async def test_two_mongo_replicas_racing_never_exceed_the_limit(
    mongodb_url: str, unique_name: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore

    replicas = [MongoStore(mongodb_url, unique_name), MongoStore(mongodb_url, unique_name)]
    for replica in replicas:
        await replica.start()
    try:
        for limit, scope in ((7, "tenant-a"), (1, "tenant-b")):
            taken = await asyncio.gather(
                *(replicas[i % 2].take_slot(scope, f"call-{i}", limit) for i in range(40))
            )
            assert taken.count(True) == limit
            assert await replicas[0].count_slots(scope) == limit
            assert await replicas[1].count_slots(scope) == limit
        # Both replicas' takers of one holder share its one slot.
        assert await replicas[0].release_slot("tenant-b", next(iter(await holders(replicas[0]))))
        same = await asyncio.gather(*(r.take_slot("tenant-b", "call-x", 1) for r in replicas * 5))
        assert all(same)
        assert await replicas[1].count_slots("tenant-b") == 1
    finally:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
        await client.drop_database(unique_name)
        await client.close()
        for replica in replicas:
            await replica.close()


async def test_two_sqlite_stores_on_one_file_racing_never_exceed_the_limit(
    tmp_path: Path,
) -> None:
    from switchboard_shared.adapters.store.sqlite import SqliteStore

    path = tmp_path / "shared.db"
    # Two connections, each on its own thread: the file's write lock is what serializes.
    stores = [SqliteStore(path), SqliteStore(path)]
    for one in stores:
        await one.start()
    try:
        taken = await asyncio.gather(
            *(stores[i % 2].take_slot("tenant-a", f"call-{i}", 7) for i in range(40))
        )
        assert taken.count(True) == 7
        assert await stores[1].count_slots("tenant-a") == 7
    finally:
        for one in stores:
            await one.close()


async def holders(store: Store) -> set[str]:
    """The holders of tenant-b's slots (read through the lease sweep)."""
    found = await store.find_slots(taken_before=utcnow() + timedelta(days=1))
    return {slot.holder for slot in found if slot.scope == "tenant-b"}


async def test_a_lowered_limit_keeps_its_holders_and_refuses_new_ones(store: Store) -> None:
    for i in range(5):
        assert await store.take_slot("tenant-a", f"call-{i}", 5)
    assert not await store.take_slot("tenant-a", "new-1", 3)
    assert await store.take_slot("tenant-a", "call-4", 3)  # a holder keeps its slot
    assert await store.count_slots("tenant-a") == 5

    for i in range(2):
        assert await store.release_slot("tenant-a", f"call-{i}")
    assert not await store.take_slot("tenant-a", "new-1", 3)  # 3 held: still full
    assert await store.release_slot("tenant-a", "call-2")
    assert await store.take_slot("tenant-a", "new-1", 3)
    assert not await store.take_slot("tenant-a", "new-2", 3)
    assert await store.count_slots("tenant-a") == 3


async def test_the_lease_sweep_finds_the_oldest_slots_first(store: Store) -> None:
    before = ms(utcnow())
    for i in range(4):
        assert await store.take_slot(f"scope-{i % 2}", f"call-{i}", 10)
        await asyncio.sleep(0.005)  # distinct milliseconds: a known order
    after = utcnow() + timedelta(seconds=1)

    assert await store.find_slots(taken_before=before) == []
    found = await store.find_slots(taken_before=after)
    assert [(s.scope, s.holder) for s in found] == [
        ("scope-0", "call-0"),
        ("scope-1", "call-1"),
        ("scope-0", "call-2"),
        ("scope-1", "call-3"),
    ]
    assert [s.taken_at for s in found] == sorted(s.taken_at for s in found)
    assert all(before <= s.taken_at < after for s in found)
    assert found[0].taken_at.tzinfo is not None

    oldest = await store.find_slots(taken_before=after, limit=2)
    assert [s.holder for s in oldest] == ["call-0", "call-1"]
    assert [s.holder for s in await store.find_slots(taken_before=found[2].taken_at)] == [
        "call-0",
        "call-1",
    ]
    with pytest.raises(ValueError, match="limit"):
        await store.find_slots(taken_before=after, limit=0)


# --- calls waiting for a slot ----------------------------------------------------------------


async def waiting_call(store: Store, lane: str | None, since: datetime | None) -> Call:
    call, _ = await store.insert_call(
        Call(tenant_id="tenant-a", agent="altynai", phone="+996700000000"), TTL
    )
    updated = await store.update_call(
        call.call_id, CallChanges(waiting_lane=lane, waiting_since=since)
    )
    assert updated is not None
    return updated


async def test_calls_waiting_in_a_lane_come_oldest_waiting_first(store: Store) -> None:
    now = ms(utcnow())
    newer = await waiting_call(store, "tenant-a", now - timedelta(seconds=10))
    oldest = await waiting_call(store, "tenant-a", now - timedelta(seconds=30))
    middle = await waiting_call(store, "tenant-a", now - timedelta(seconds=20))
    other_lane = await waiting_call(store, "tenant-b", now - timedelta(seconds=40))
    await waiting_call(store, None, None)  # not waiting

    in_lane = await store.find_calls(waiting_lane="tenant-a")
    assert [c.call_id for c in in_lane] == [oldest.call_id, middle.call_id, newer.call_id]
    assert in_lane[0].waiting_lane == "tenant-a"
    assert in_lane[0].waiting_since == now - timedelta(seconds=30)
    limited = await store.find_calls(waiting_lane="tenant-a", limit=2)
    assert [c.call_id for c in limited] == [oldest.call_id, middle.call_id]

    before = await store.find_calls(waiting_before=now - timedelta(seconds=15))
    assert [c.call_id for c in before] == [other_lane.call_id, oldest.call_id, middle.call_id]
    both = await store.find_calls(
        waiting_lane="tenant-a", waiting_before=now - timedelta(seconds=15)
    )
    assert [c.call_id for c in both] == [oldest.call_id, middle.call_id]
    assert await store.find_calls(waiting_lane="nobody") == []
    # Other criteria still combine with them.
    assert (
        await store.find_calls(waiting_lane="tenant-a", statuses=frozenset({CallStatus.SCHEDULED}))
        == []
    )


async def test_a_call_no_longer_waiting_is_not_found_waiting(store: Store) -> None:
    now = ms(utcnow())
    first = await waiting_call(store, "tenant-a", now - timedelta(seconds=20))
    second = await waiting_call(store, "tenant-a", now - timedelta(seconds=10))

    # Compare-and-set on the waiting fields: only the dispatcher that saw it waiting wins.
    guard = CallGuard(waiting_lane="tenant-a", waiting_since=now - timedelta(seconds=20))
    cleared = await store.update_call(
        first.call_id, CallChanges(waiting_lane=None, waiting_since=None), guard=guard
    )
    assert cleared is not None
    assert (cleared.waiting_lane, cleared.waiting_since) == (None, None)
    again = await store.update_call(first.call_id, CallChanges(waiting_lane="x"), guard=guard)
    assert again is None
    # None in a guard matches a call not waiting.
    not_waiting = CallGuard(waiting_lane=None)
    assert await store.update_call(first.call_id, CallChanges(), guard=not_waiting) is not None
    assert await store.update_call(second.call_id, CallChanges(), guard=not_waiting) is None

    assert [c.call_id for c in await store.find_calls(waiting_lane="tenant-a")] == [second.call_id]
    assert [c.call_id for c in await store.find_calls(waiting_before=now)] == [second.call_id]
    stored = await store.get_call(first.call_id)
    assert stored is not None
    assert (stored.waiting_lane, stored.waiting_since) == (None, None)


def test_the_waiting_fields_are_internal() -> None:
    call = Call(
        tenant_id="t",
        agent="altynai",
        phone="+996700000000",
        waiting_lane="tenant-t",
        waiting_since=datetime(2026, 1, 1, tzinfo=UTC),
    )
    public = call.public_view().model_dump(mode="json")
    assert "waiting_lane" not in public
    assert "waiting_since" not in public
    assert "tenant-t" not in str(public)


# --- tenants' limits -------------------------------------------------------------------------


async def test_tenant_limits_round_trip(store: Store) -> None:
    tenant = await store.create_tenant(Tenant(name="acme"))
    assert tenant.max_concurrent_calls == DEFAULT_MAX_CONCURRENT_CALLS == 10

    updated = await store.set_tenant_limits(tenant.tenant_id, max_concurrent_calls=3)
    assert updated is not None
    assert updated.max_concurrent_calls == 3
    assert updated.model_copy(update={"max_concurrent_calls": 10}) == tenant
    assert await store.get_tenant(tenant.tenant_id) == updated
    assert await store.get_tenant_by_name("acme") == updated

    assert await store.set_tenant_limits("no-such-tenant", max_concurrent_calls=3) is None
    assert await store.get_tenant("no-such-tenant") is None


def test_a_tenant_stored_without_a_limit_reads_as_the_default() -> None:
    stored_before = {"tenant_id": "t1", "name": "old", "created_at": "2025-01-01T00:00:00Z"}
    assert Tenant.model_validate(stored_before).max_concurrent_calls == 10


async def test_a_stored_tenant_without_a_limit_reads_as_the_default(
    store_kind: StoreKind, store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tenant = await store.create_tenant(Tenant(name="old"))
    await drop_limit_field(store_kind, store, tmp_path, request, tenant.tenant_id)
    found = await store.get_tenant(tenant.tenant_id)
    assert found is not None
    assert found.max_concurrent_calls == 10
    updated = await store.set_tenant_limits(tenant.tenant_id, max_concurrent_calls=2)
    assert updated is not None
    assert updated.max_concurrent_calls == 2


async def drop_limit_field(
    store_kind: StoreKind,
    store: Store,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    tenant_id: str,
) -> None:
    """Make the stored tenant look like one written before the limit existed."""
    if store_kind == "sqlite":
        from switchboard_shared.adapters.store.sqlite import SqliteStore

        assert isinstance(store, SqliteStore)
        sql = (
            "UPDATE tenants SET doc = json_remove(doc, '$.max_concurrent_calls') "
            "WHERE tenant_id = ?"
        )
        await store._db.run(lambda c: c.execute(sql, (tenant_id,)))
        return
    from switchboard_shared.adapters.store.mongo import MongoStore

    assert isinstance(store, MongoStore)
    await store._db.collection("tenants").update_one(
        {"_id": tenant_id}, {"$unset": {"max_concurrent_calls": ""}}
    )
