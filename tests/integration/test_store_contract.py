"""The Store contract (ports.Store), run against every adapter: SQLite and MongoDB."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import sys
import uuid
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from switchboard_shared.adapters.store.common.deliveries import (
    BY_CALL,
    BY_EVENT,
    BY_STATUS,
    BY_TENANT,
    delivery_listing_index,
)
from switchboard_shared.adapters.store.common.paging import Position, encode_cursor
from switchboard_shared.adapters.store.common.records import as_stored
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.batches import Batch, BatchCall, BatchState
from switchboard_shared.domain.blocked_numbers import BlockedNumber
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallAttempt, CallFilter, CallStatus, utcnow
from switchboard_shared.domain.tenants import Tenant, new_api_key
from switchboard_shared.domain.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.ports import (
    AlreadyExists,
    IdempotencyConflict,
    InvalidCursor,
    Store,
    StoreError,
)
from switchboard_testing.net import free_port
from tests.support.stores import StoreKind, open_store
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.timeout(60)

TTL = 3600.0
QUEUED = frozenset({CallStatus.QUEUED})


def new_call(tenant_id: str = "tenant-a", **fields: object) -> Call:
    return Call.model_validate(
        {"tenant_id": tenant_id, "agent": "altynai", "phone": "+996700000000", **fields}
    )


def ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# --- lifecycle -------------------------------------------------------------------------------


async def test_ping_answers_while_started_and_start_is_idempotent(store: Store) -> None:
    await store.ping()
    await store.start()
    await store.ping()


async def test_ping_raises_store_error_when_closed(
    store_kind: StoreKind, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("mongodb_url") if store_kind == "mongo" else None
    async with open_store(store_kind, tmp_path=tmp_path, mongodb_url=url) as closing:
        await closing.close()
        with pytest.raises(StoreError):
            await closing.ping()


# --- tenants, keys, agents -------------------------------------------------------------------


async def test_tenants_are_unique_by_name(store: Store) -> None:
    acme = await store.create_tenant(Tenant(name="acme"))
    assert await store.get_tenant(acme.tenant_id) == acme
    assert await store.get_tenant_by_name("acme") == acme
    assert await store.get_tenant("nope") is None
    assert await store.get_tenant_by_name("nope") is None
    with pytest.raises(AlreadyExists):
        await store.create_tenant(Tenant(name="acme"))


async def test_api_keys_are_found_by_hash_and_revoked_once(store: Store) -> None:
    _, key = new_api_key("tenant-a")
    _, other = new_api_key("tenant-b")
    stored = await store.add_api_key(key)
    await store.add_api_key(other)
    assert await store.find_api_key(key.key_hash) == stored
    assert await store.find_api_key("0" * 64) is None
    with pytest.raises(AlreadyExists):
        await store.add_api_key(key.model_copy(update={"key_id": "key_other"}))

    assert await store.revoke_api_key(key.key_id) is True
    assert await store.revoke_api_key(key.key_id) is False
    assert await store.revoke_api_key("key_missing") is False
    revoked = await store.find_api_key(key.key_hash)
    assert revoked is not None
    assert revoked.revoked_at is not None

    second = (await store.add_api_key(new_api_key("tenant-a")[1])).key_id
    assert [k.key_id for k in await store.list_api_keys("tenant-a")] == [key.key_id, second]
    assert [k.key_id for k in await store.list_api_keys("tenant-b")] == [other.key_id]


async def test_agents_are_upserted_by_key_and_listed_in_key_order(store: Store) -> None:
    def agent(key: str, name: str) -> Agent:
        return Agent(key=key, name=name, provider="simulator", provider_agent_id=f"p-{key}")

    await store.upsert_agent(agent("altynai", "Altynai"))
    await store.upsert_agent(agent("akylai", "Akylai"))
    await store.upsert_agent(agent("altynai", "Altynai v2").model_copy(update={"enabled": False}))
    got = await store.get_agent("altynai")
    assert got is not None
    assert got.name == "Altynai v2"
    assert not got.enabled
    assert await store.get_agent("missing") is None
    assert [a.key for a in await store.list_agents()] == ["akylai", "altynai"]


# --- calls: insert, read, idempotency --------------------------------------------------------


async def test_call_round_trips_at_millisecond_precision(store: Store) -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    call = new_call(
        created_at=moment,
        variables={"name": "Aida", "nested": {"n": [1, 2]}},
        metadata={"order": 7},
        provider="simulator",
        provider_call_id="sim-1",
        trace_context={"traceparent": "00-abc-def-01"},
    )
    stored, created = await store.insert_call(call, TTL)
    assert created
    assert stored.created_at == ms(moment)
    assert stored.created_at.tzinfo is not None
    assert await store.get_call(call.call_id) == stored
    assert await store.get_call(call.call_id, tenant_id="tenant-a") == stored
    assert await store.get_call(call.call_id, tenant_id="tenant-b") is None
    assert await store.get_call("missing") is None
    assert await store.find_call_by_provider_id("simulator", "sim-1") == stored
    assert await store.find_call_by_provider_id("vocode", "sim-1") is None


async def test_idempotency_key_returns_the_same_call_for_the_same_request(store: Store) -> None:
    first, created = await store.insert_call(
        new_call(idempotency_key="k1", request_fingerprint="f1"), TTL
    )
    again, created_again = await store.insert_call(
        new_call(idempotency_key="k1", request_fingerprint="f1"), TTL
    )
    assert created
    assert not created_again
    assert again == first
    with pytest.raises(IdempotencyConflict):
        await store.insert_call(new_call(idempotency_key="k1", request_fingerprint="f2"), TTL)
    # The key is per tenant.
    other, other_created = await store.insert_call(
        new_call("tenant-b", idempotency_key="k1", request_fingerprint="f2"), TTL
    )
    assert other_created
    assert other.call_id != first.call_id
    assert (await store.usage("tenant-a")).total_calls == 1


async def test_an_expired_idempotency_key_is_given_up(store: Store) -> None:
    old, _ = await store.insert_call(
        new_call(
            idempotency_key="k1",
            request_fingerprint="f1",
            created_at=utcnow() - timedelta(hours=2),
        ),
        TTL,
    )
    fresh, created = await store.insert_call(
        new_call(idempotency_key="k1", request_fingerprint="f2"), TTL
    )
    assert created
    assert fresh.call_id != old.call_id
    released = await store.get_call(old.call_id)
    assert released is not None
    assert released.idempotency_key is None
    same, created_again = await store.insert_call(
        new_call(idempotency_key="k1", request_fingerprint="f2"), TTL
    )
    assert not created_again
    assert same.call_id == fresh.call_id


async def test_concurrent_requests_with_one_idempotency_key_create_one_call(
    store: Store,
) -> None:
    results = await asyncio.gather(
        *(
            store.insert_call(new_call(idempotency_key="k1", request_fingerprint="f1"), TTL)
            for _ in range(10)
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({call.call_id for call, _ in results}) == 1


async def test_a_duplicate_call_id_is_refused(store: Store) -> None:
    call = new_call()
    await store.insert_call(call, TTL)
    with pytest.raises(AlreadyExists):
        await store.insert_call(call, TTL)


# --- calls: listing --------------------------------------------------------------------------

STATUS_CYCLE = [CallStatus.QUEUED, CallStatus.DIALING, CallStatus.COMPLETED, CallStatus.FAILED]


async def seed_calls(store: Store, tenant_id: str, count: int, base: datetime) -> list[Call]:
    """`count` calls, three per second of creation time (ties broken by id), newest first."""
    calls = []
    for i in range(count):
        call = new_call(
            tenant_id,
            created_at=base + timedelta(seconds=i // 3),
            status=STATUS_CYCLE[i % 4],
            agent=["altynai", "akylai"][i % 2],
        )
        calls.append((await store.insert_call(call, TTL))[0])
    return sorted(calls, key=lambda c: (c.created_at, c.call_id), reverse=True)


async def read_all(store: Store, tenant_id: str, filters: CallFilter, limit: int) -> list[Call]:
    seen: list[Call] = []
    cursor: str | None = None
    while True:
        page = await store.list_calls(tenant_id, filters, limit, cursor)
        assert len(page.calls) <= limit
        seen += page.calls
        if page.next_cursor is None:
            return seen
        assert len(page.calls) == limit
        cursor = page.next_cursor


async def test_list_calls_pages_newest_first_with_filters(store: Store) -> None:
    base = ms(utcnow() - timedelta(days=1))
    calls = await seed_calls(store, "tenant-a", 130, base)
    await seed_calls(store, "tenant-b", 7, base)

    assert await read_all(store, "tenant-a", CallFilter(), 25) == calls
    assert await read_all(store, "tenant-a", CallFilter(), 130) == calls
    assert await read_all(store, "tenant-a", CallFilter(), 100) == calls
    assert len(await read_all(store, "tenant-b", CallFilter(), 3)) == 7

    completed = CallFilter(status=CallStatus.COMPLETED)
    expected = [c for c in calls if c.status is CallStatus.COMPLETED]
    assert await read_all(store, "tenant-a", completed, 7) == expected
    # dialing calls have odd indexes, so they are all akylai's
    both = CallFilter(status=CallStatus.DIALING, agent="akylai")
    expected = [c for c in calls if c.status is CallStatus.DIALING and c.agent == "akylai"]
    assert expected
    assert await read_all(store, "tenant-a", both, 4) == expected

    # created_after / created_before are strict bounds
    after, before = calls[-10].created_at, calls[9].created_at
    window = CallFilter(created_after=after, created_before=before)
    expected = [c for c in calls if after < c.created_at < before]
    assert await read_all(store, "tenant-a", window, 11) == expected
    assert all(c.created_at not in (after, before) for c in expected)


async def test_list_calls_neither_skips_nor_repeats_under_concurrent_inserts(
    store: Store,
) -> None:
    calls = await seed_calls(store, "tenant-a", 105, ms(utcnow() - timedelta(hours=1)))
    seen: list[Call] = []
    cursor: str | None = None
    while True:
        page = await store.list_calls("tenant-a", CallFilter(), 10, cursor)
        seen += page.calls
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        for _ in range(3):  # new calls arrive while the client pages
            await store.insert_call(new_call("tenant-a"), TTL)
    assert [c.call_id for c in seen] == [c.call_id for c in calls]
    first_page = await store.list_calls("tenant-a", CallFilter(), 100, None)
    assert len(first_page.calls) == 100
    assert first_page.next_cursor is not None


async def test_list_calls_refuses_a_limit_below_one(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_calls("tenant-a", CallFilter(), 0, None)
    with pytest.raises(ValueError, match="limit"):
        await store.list_deliveries("tenant-a", DeliveryFilter(), 0, None)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "!!!!",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'["c","x","id"]').decode(),
        encode_cursor("deliveries", Position(datetime(2024, 1, 1, tzinfo=UTC), "dlv_1")),
        "x" * 5000,
    ],
)
async def test_list_calls_refuses_a_cursor_it_did_not_issue(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_calls("tenant-a", CallFilter(), 10, cursor)


# --- calls: conditional updates and the outbox -----------------------------------------------


async def test_update_call_applies_changes_when_guards_hold(store: Store) -> None:
    minute_ago = utcnow() - timedelta(minutes=1)
    call, _ = await store.insert_call(new_call(created_at=minute_ago, updated_at=minute_ago), TTL)
    updated = await store.update_call(
        call.call_id,
        CallChanges(status=CallStatus.DIALING, provider="simulator", duration=3),
        guard=CallGuard(statuses=QUEUED, provider_call_id=None),
    )
    assert updated is not None
    assert (updated.status, updated.provider, updated.duration) == ("dialing", "simulator", 3)
    assert updated.updated_at > call.updated_at
    assert updated.sequence == call.sequence
    assert updated.publish_pending == call.publish_pending
    assert await store.get_call(call.call_id) == updated


async def test_update_call_returns_none_when_a_guard_fails(store: Store) -> None:
    call, _ = await store.insert_call(new_call(provider_call_id="p-1"), TTL)
    failing_guards = [
        CallGuard(statuses=frozenset({CallStatus.DIALING})),
        CallGuard(provider_call_id=None),
        CallGuard(provider_call_id="p-2"),
        CallGuard(cancel_requested=True),
        CallGuard(statuses=QUEUED, provider_call_id="p-2"),
    ]
    for guard in failing_guards:
        assert await store.update_call(call.call_id, CallChanges(duration=1), guard=guard) is None
    assert await store.update_call("missing", CallChanges(duration=1)) is None
    assert await store.get_call(call.call_id) == call
    matched = await store.update_call(
        call.call_id,
        CallChanges(duration=1),
        guard=CallGuard(provider_call_id="p-1", cancel_requested=False, transcript=None),
    )
    assert matched is not None
    assert matched.duration == 1
    # a guard may name the status twice: both must hold
    both = await store.update_call(
        call.call_id,
        CallChanges(duration=2),
        guard=CallGuard(statuses=QUEUED, status=CallStatus.QUEUED, duration=1),
    )
    assert both is not None
    assert both.duration == 2
    contradiction = await store.update_call(
        call.call_id,
        CallChanges(duration=3),
        guard=CallGuard(statuses=QUEUED, status=CallStatus.DIALING),
    )
    assert contradiction is None


async def test_update_call_refuses_a_bump_with_an_explicit_sequence(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    with pytest.raises(ValueError, match="sequence"):
        await store.update_call(call.call_id, CallChanges(sequence=7), bump_sequence=True)
    assert await store.get_call(call.call_id) == call


async def test_update_call_keeps_an_explicit_updated_at(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    past = datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    updated = await store.update_call(call.call_id, CallChanges(updated_at=past))
    assert updated is not None
    assert updated.updated_at == ms(past)


async def test_bump_sequence_and_mark_published_form_an_outbox(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    assert (call.sequence, call.publish_pending) == (1, True)
    await store.mark_published([(call.call_id, 1)])
    published = await store.get_call(call.call_id)
    assert published is not None
    assert not published.publish_pending

    bumped = await store.update_call(
        call.call_id,
        CallChanges(status=CallStatus.DIALING),
        guard=CallGuard(statuses=QUEUED),
        bump_sequence=True,
    )
    assert bumped is not None
    assert (bumped.sequence, bumped.publish_pending) == (2, True)
    again = await store.update_call(call.call_id, CallChanges(duration=5), bump_sequence=True)
    assert again is not None
    assert again.sequence == 3
    await store.mark_published([(call.call_id, 2)])  # stale: sequence 3 stays pending
    pending = await store.get_call(call.call_id)
    assert pending is not None
    assert pending.publish_pending
    await store.mark_published([(call.call_id, 3)])
    done = await store.get_call(call.call_id)
    assert done is not None
    assert not done.publish_pending
    assert done.sequence == 3
    await store.mark_published([("missing", 1)])


async def test_mark_published_clears_many_calls_in_one_write_but_not_a_newer_sequence(
    store: Store,
) -> None:
    first, _ = await store.insert_call(new_call(), TTL)
    second, _ = await store.insert_call(new_call(), TTL)
    moved, _ = await store.insert_call(new_call(), TTL)
    await store.update_call(moved.call_id, CallChanges(duration=1), bump_sequence=True)
    await store.mark_published(
        [(first.call_id, 1), (second.call_id, 1), (moved.call_id, 1), ("missing", 1)]
    )
    calls = {c: await store.get_call(c) for c in (first.call_id, second.call_id, moved.call_id)}
    assert {c: (x.publish_pending if x else None) for c, x in calls.items()} == {
        first.call_id: False,
        second.call_id: False,
        moved.call_id: True,
    }
    # The whole record agrees with its flag (SQLite keeps it twice: column and document).
    pending = await store.find_calls(publish_pending=True)
    assert [c.call_id for c in pending if c.call_id in calls] == [moved.call_id]
    await store.mark_published([])


async def test_concurrent_conditional_updates_have_one_winner(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    results = await asyncio.gather(
        *(
            store.update_call(
                call.call_id,
                CallChanges(status=CallStatus.DIALING, provider_call_id=f"p-{i}"),
                guard=CallGuard(statuses=QUEUED),
                bump_sequence=True,
            )
            for i in range(20)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    final = await store.get_call(call.call_id)
    assert final == winners[0]
    assert final.sequence == 2


async def test_find_calls_oldest_update_first(store: Store) -> None:
    now = utcnow()
    stale = []
    ages = [(30, CallStatus.DIALING), (50, CallStatus.RINGING), (40, CallStatus.QUEUED)]
    for minutes, status in ages:
        call, _ = await store.insert_call(new_call(), TTL)
        updated = await store.update_call(
            call.call_id, CallChanges(status=status, updated_at=now - timedelta(minutes=minutes))
        )
        assert updated is not None
        stale.append(updated)
    fresh, _ = await store.insert_call(new_call("tenant-b"), TTL)
    await store.mark_published([(stale[0].call_id, 1)])

    active = frozenset({CallStatus.DIALING, CallStatus.RINGING})
    found = await store.find_calls(statuses=active)
    assert [c.call_id for c in found] == [stale[1].call_id, stale[0].call_id]
    old = await store.find_calls(updated_before=now - timedelta(minutes=35))
    assert [c.call_id for c in old] == [stale[1].call_id, stale[2].call_id]
    exactly = await store.find_calls(updated_before=stale[1].updated_at)
    assert exactly == []  # strictly before
    pending = await store.find_calls(publish_pending=True)
    assert [c.call_id for c in pending] == [stale[1].call_id, stale[2].call_id, fresh.call_id]
    assert [c.call_id for c in await store.find_calls(publish_pending=False)] == [stale[0].call_id]
    assert len(await store.find_calls(publish_pending=True, limit=2)) == 2
    both = await store.find_calls(
        statuses=active, publish_pending=True, updated_before=now - timedelta(minutes=1)
    )
    assert [c.call_id for c in both] == [stale[1].call_id]


async def test_find_calls_past_their_watchdog_deadline(store: Store) -> None:
    now = utcnow()
    deadlines = {"overdue": now - timedelta(minutes=1), "later": now + timedelta(minutes=5)}
    calls = {}
    for name, deadline in [*deadlines.items(), ("none", None)]:
        call, _ = await store.insert_call(new_call(), TTL)
        updated = await store.update_call(
            call.call_id, CallChanges(status=CallStatus.IN_PROGRESS, watchdog_deadline=deadline)
        )
        assert updated is not None
        calls[name] = updated
    ended, _ = await store.insert_call(new_call(), TTL)
    await store.update_call(
        ended.call_id,
        CallChanges(status=CallStatus.COMPLETED, watchdog_deadline=deadlines["overdue"]),
    )

    live = frozenset({CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS})
    found = await store.find_calls(statuses=live, deadline_before=now)
    assert [c.call_id for c in found] == [calls["overdue"].call_id]
    assert found[0].watchdog_deadline == deadlines["overdue"].replace(
        microsecond=deadlines["overdue"].microsecond // 1000 * 1000
    )
    everything = await store.find_calls(deadline_before=now + timedelta(hours=1))
    assert {c.call_id for c in everything} == {
        calls["overdue"].call_id,
        calls["later"].call_id,
        ended.call_id,
    }


async def test_find_calls_whose_completion_is_still_to_be_notified(store: Store) -> None:
    pending, _ = await store.insert_call(new_call(), TTL)
    await store.update_call(
        pending.call_id, CallChanges(status=CallStatus.COMPLETED, notify_pending=True)
    )
    notified, _ = await store.insert_call(new_call(), TTL)
    await store.update_call(notified.call_id, CallChanges(status=CallStatus.FAILED))
    live, _ = await store.insert_call(new_call(), TTL)

    found = await store.find_calls(notify_pending=True)
    assert [c.call_id for c in found] == [pending.call_id]
    assert found[0].notify_pending is True
    rest = await store.find_calls(notify_pending=False)
    assert {c.call_id for c in rest} == {notified.call_id, live.call_id}
    cleared = await store.update_call(pending.call_id, CallChanges(notify_pending=False))
    assert cleared is not None
    assert await store.find_calls(notify_pending=True) == []


async def test_find_calls_due_soonest_first(store: Store) -> None:
    now = utcnow()
    due_times = {
        "late": now - timedelta(minutes=1),
        "later": now + timedelta(minutes=5),
        "latest": now - timedelta(minutes=10),
    }
    calls = {}
    for name, due in due_times.items():
        call, _ = await store.insert_call(
            new_call(status=CallStatus.SCHEDULED, next_attempt_at=due), TTL
        )
        calls[name] = call
    await store.insert_call(new_call(status=CallStatus.QUEUED), TTL)  # no next attempt
    await store.insert_call(
        new_call(status=CallStatus.COMPLETED, next_attempt_at=due_times["late"]), TTL
    )

    scheduled = frozenset({CallStatus.SCHEDULED})
    found = await store.find_calls(statuses=scheduled, due_before=now)
    assert [c.call_id for c in found] == [calls["latest"].call_id, calls["late"].call_id]
    assert found[1].next_attempt_at == ms(due_times["late"])
    limited = await store.find_calls(statuses=scheduled, due_before=now, limit=1)
    assert [c.call_id for c in limited] == [calls["latest"].call_id]
    queued = await store.update_call(
        calls["late"].call_id,
        CallChanges(status=CallStatus.QUEUED, next_attempt_at=None),
        guard=CallGuard(next_attempt_at=ms(due_times["late"])),
    )
    assert queued is not None
    assert [c.call_id for c in await store.find_calls(statuses=scheduled, due_before=now)] == [
        calls["latest"].call_id
    ]


async def test_attempts_and_the_schedule_round_trip(store: Store) -> None:
    ended = ms(utcnow())
    attempt = CallAttempt(
        attempt=1,
        status=CallStatus.NO_ANSWER,
        ended_reason="no_answer",
        started_at=None,
        ended_at=ended,
        duration=None,
    )
    window = {"start": "09:00:00", "end": "20:00:00", "days": ["mon"], "timezone": "auto"}
    call, _ = await store.insert_call(
        new_call(
            status=CallStatus.SCHEDULED,
            calling_window=window,
            retry={"on": ["no_answer"], "max_attempts": 3, "delay_seconds": 60},
            scheduled_at=ended,
        ),
        TTL,
    )
    updated = await store.update_call(
        call.call_id, CallChanges(attempts=[attempt], attempt=2, next_attempt_at=ended)
    )
    assert updated is not None
    stored = await store.get_call(call.call_id)
    assert stored is not None
    assert stored.attempts == [attempt]
    assert (stored.attempt, stored.next_attempt_at, stored.scheduled_at) == (2, ended, ended)
    assert stored.calling_window == window
    assert stored.retry == {"on": ["no_answer"], "max_attempts": 3, "delay_seconds": 60}


async def test_usage_counts_the_tenants_calls(store: Store) -> None:
    specs = [
        (CallStatus.SCHEDULED, None),  # waiting for its time: not active
        (CallStatus.COMPLETED, 60),
        (CallStatus.COMPLETED, 30),
        (CallStatus.FAILED, None),
        (CallStatus.IN_PROGRESS, None),
        (CallStatus.QUEUED, None),
        (CallStatus.NO_ANSWER, 0),
    ]
    for status, duration in specs:
        await store.insert_call(new_call(status=status, duration=duration), TTL)
    await store.insert_call(new_call("tenant-b", status=CallStatus.COMPLETED, duration=999), TTL)

    usage = await store.usage("tenant-a")
    assert (usage.total_calls, usage.total_seconds, usage.active_calls) == (7, 90, 2)
    assert usage.by_status == {
        "scheduled": 1,
        "queued": 1,
        "dialing": 0,
        "ringing": 0,
        "in_progress": 1,
        "completed": 2,
        "failed": 1,
        "no_answer": 1,
        "busy": 0,
        "canceled": 0,
    }
    empty = await store.usage("tenant-c")
    assert (empty.total_calls, empty.total_seconds, empty.active_calls) == (0, 0, 0)


# --- batches -----------------------------------------------------------------------------------


def batch_with_calls(count: int, **fields: object) -> tuple[Batch, Call, list[BatchCall]]:
    batch = Batch.model_validate(
        {"tenant_id": "tenant-a", "agent": "altynai", "total": count, **fields}
    )
    template = new_call(batch_id=batch.batch_id, status=CallStatus.SCHEDULED, phone="")
    calls = [
        BatchCall(phone=f"+99670{i:07d}", variables={"i": i}, metadata={}, next_attempt_at=utcnow())
        for i in range(count)
    ]
    return batch, template, calls


async def test_a_batch_is_stored_with_its_calls_and_counted(store: Store) -> None:
    batch, template, rows = batch_with_calls(1200, name="march")
    stored, created = await store.insert_batch(batch, template, rows, TTL)
    assert created
    first = await store.get_call(rows[0].call_id)
    assert first is not None
    assert first == as_stored(template.model_copy(update=rows[0].fields()))
    assert (first.phone, first.variables, first.batch_id) == (
        "+996700000000",
        {"i": 0},
        batch.batch_id,
    )
    assert stored == await store.get_batch(batch.batch_id, "tenant-a")
    assert await store.get_batch(batch.batch_id, "tenant-b") is None
    progress = await store.batch_progress(batch.batch_id)
    assert progress.counts["scheduled"] == 1200
    assert sum(progress.counts.values()) == 1200
    assert progress.attempts == 0
    attempt = CallAttempt(attempt=1, status=CallStatus.NO_ANSWER)
    await store.update_call(
        rows[0].call_id, CallChanges(status=CallStatus.NO_ANSWER, attempts=[attempt, attempt])
    )
    progress = await store.batch_progress(batch.batch_id)
    assert (progress.counts["no_answer"], progress.attempts) == (1, 2)
    page = await store.list_calls("tenant-a", CallFilter(batch_id=batch.batch_id), 100, None)
    assert len(page.calls) == 100
    assert page.next_cursor is not None
    assert {c.batch_id for c in page.calls} == {batch.batch_id}


async def test_a_batch_idempotency_key_replays_without_new_calls(store: Store) -> None:
    batch, template, calls = batch_with_calls(3, idempotency_key="k", request_fingerprint="f")
    await store.insert_batch(batch, template, calls, TTL)
    replay, again, more = batch_with_calls(3, idempotency_key="k", request_fingerprint="f")
    held, created = await store.insert_batch(replay, again, more, TTL)
    assert (held.batch_id, created) == (batch.batch_id, False)
    assert sum((await store.batch_progress(replay.batch_id)).counts.values()) == 0
    other, its_template, others = batch_with_calls(3, idempotency_key="k", request_fingerprint="g")
    with pytest.raises(IdempotencyConflict):
        await store.insert_batch(other, its_template, others, TTL)


async def test_a_batch_whose_write_fails_midway_leaves_nothing(store: Store) -> None:
    # A call of the third thousand repeats an existing call's id: its write fails after
    # the batch and two thousand calls were written. All or nothing: none of it stays.
    batch, template, rows = batch_with_calls(2500)
    taken = await store.insert_call(new_call(), TTL)
    rows[2100] = replace(rows[2100], call_id=taken[0].call_id)
    with pytest.raises(StoreError):
        await store.insert_batch(batch, template, rows, TTL)
    assert await store.get_batch(batch.batch_id) is None
    assert sum((await store.batch_progress(batch.batch_id)).counts.values()) == 0
    assert await store.get_call(rows[0].call_id) is None
    # The same batch can then be written whole.
    rows[2100] = replace(rows[2100], call_id=str(uuid.uuid4()))
    stored, created = await store.insert_batch(batch, template, rows, TTL)
    assert created
    assert sum((await store.batch_progress(stored.batch_id)).counts.values()) == 2500


async def test_batch_state_is_compare_and_set(store: Store) -> None:
    batch, template, calls = batch_with_calls(1)
    await store.insert_batch(batch, template, calls, TTL)
    active = frozenset({BatchState.ACTIVE})
    paused = await store.set_batch_state(batch.batch_id, BatchState.PAUSED, from_states=active)
    assert paused is not None
    assert paused.state is BatchState.PAUSED
    assert (
        await store.set_batch_state(batch.batch_id, BatchState.PAUSED, from_states=active) is None
    )
    stored = await store.get_batch(batch.batch_id)
    assert stored is not None
    assert stored.state is BatchState.PAUSED


async def test_find_calls_of_a_batch_held_or_not(store: Store) -> None:
    batch, template, calls = batch_with_calls(4)
    await store.insert_batch(batch, template, calls, TTL)
    await store.insert_call(new_call(status=CallStatus.SCHEDULED), TTL)  # no batch
    held_at = ms(utcnow())
    await store.update_call(
        calls[1].call_id, CallChanges(held_next_attempt_at=held_at, next_attempt_at=None)
    )
    scheduled = frozenset({CallStatus.SCHEDULED})
    of_batch = await store.find_calls(statuses=scheduled, batch_id=batch.batch_id)
    assert {c.call_id for c in of_batch} == {c.call_id for c in calls}
    held = await store.find_calls(statuses=scheduled, batch_id=batch.batch_id, held=True)
    assert [c.call_id for c in held] == [calls[1].call_id]
    assert held[0].held_next_attempt_at == held_at
    not_held = await store.find_calls(batch_id=batch.batch_id, held=False)
    assert len(not_held) == 3


# --- blocked numbers ---------------------------------------------------------------------------


async def test_a_number_is_blocked_once_per_tenant_and_unblocked(store: Store) -> None:
    entry, created = await store.block_number(BlockedNumber(tenant_id="t-a", phone="+996700000001"))
    assert created
    again, created_again = await store.block_number(
        BlockedNumber(tenant_id="t-a", phone="+996700000001")
    )
    assert (again.created_at, created_again) == (entry.created_at, False)
    _, other_created = await store.block_number(
        BlockedNumber(tenant_id="t-b", phone="+996700000001")
    )
    assert other_created
    phones = ["+996700000001", "+996700000002"]
    assert await store.blocked_among("t-a", phones) == {"+996700000001"}
    assert await store.blocked_among("t-c", phones) == set()
    assert await store.unblock_number("t-a", "+996700000001")
    assert not await store.unblock_number("t-a", "+996700000001")
    assert await store.blocked_among("t-a", phones) == set()
    assert await store.blocked_among("t-b", phones) == {"+996700000001"}


async def test_blocked_among_reads_many_numbers(store: Store) -> None:
    phones = [f"+99670{i:07d}" for i in range(2500)]
    for phone in phones[::100]:
        await store.block_number(BlockedNumber(tenant_id="t-a", phone=phone))
    assert await store.blocked_among("t-a", phones) == set(phones[::100])


async def test_blocked_numbers_page_newest_first(store: Store) -> None:
    base = utcnow() - timedelta(minutes=10)
    phones = [f"+99670000{i:04d}" for i in range(7)]
    for i, phone in enumerate(phones):
        # Two per millisecond: the phone breaks the tie.
        moment = base + timedelta(milliseconds=i // 2)
        await store.block_number(BlockedNumber(tenant_id="t-a", phone=phone, created_at=moment))
    await store.block_number(BlockedNumber(tenant_id="t-b", phone=phones[0]))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_blocked_numbers("t-a", 3, cursor)
        seen += [entry.phone for entry in page.numbers]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(phones))
    with pytest.raises(InvalidCursor):
        await store.list_blocked_numbers("t-a", 3, "bogus")


# --- consumer dedupe, webhook endpoints ------------------------------------------------------


async def test_webhook_endpoint_is_created_once_whoever_asks_first(store: Store) -> None:
    contenders = [
        WebhookEndpoint(tenant_id="tenant-a", url=None, secret=f"whsec_{i}") for i in range(10)
    ]
    results = await asyncio.gather(*(store.create_webhook_endpoint(e) for e in contenders))
    assert sum(created for _, created in results) == 1
    assert len({stored.secret for stored, _ in results}) == 1
    stored = await store.get_webhook_endpoint("tenant-a")
    assert stored is not None
    assert stored.secret == results[0][0].secret

    await store.put_webhook_endpoint(stored.model_copy(update={"url": "https://a.example/h"}))
    again, created = await store.create_webhook_endpoint(contenders[0])
    assert not created
    assert again.url == "https://a.example/h"


async def test_webhook_endpoint_put_replaces_and_delete_removes(store: Store) -> None:
    endpoint = WebhookEndpoint(tenant_id="tenant-a", url="https://a.example/hook", secret="whsec_1")
    await store.put_webhook_endpoint(endpoint)
    got = await store.get_webhook_endpoint("tenant-a")
    assert got is not None
    assert got.url == endpoint.url
    assert got.secret == "whsec_1"
    rotated = endpoint.model_copy(
        update={"url": None, "secret": "whsec_2", "previous_secret": "whsec_1"}
    )
    await store.put_webhook_endpoint(rotated)
    got = await store.get_webhook_endpoint("tenant-a")
    assert got is not None
    assert (got.url, got.secret, got.previous_secret) == (
        None,
        "whsec_2",
        "whsec_1",
    )
    assert await store.get_webhook_endpoint("tenant-b") is None
    assert await store.delete_webhook_endpoint("tenant-a") is True
    assert await store.delete_webhook_endpoint("tenant-a") is False
    assert await store.get_webhook_endpoint("tenant-a") is None


# --- deliveries -------------------------------------------------------------------------------


def new_delivery(tenant_id: str = "tenant-a", **fields: object) -> Delivery:
    return Delivery.model_validate(
        {
            "tenant_id": tenant_id,
            "event_id": "evt_1",
            "event_type": "call.completed",
            "call_id": "call-1",
            "url": "https://a.example/hook",
            "payload": '{"type":"call.completed"}',
            **fields,
        }
    )


async def test_deliveries_are_unique_per_event_and_url(store: Store) -> None:
    first, created = await store.create_delivery(new_delivery())
    again, created_again = await store.create_delivery(new_delivery())
    assert created
    assert not created_again
    assert again == first
    other_url, created_other = await store.create_delivery(
        new_delivery(url="https://b.example/hook")
    )
    assert created_other
    assert other_url.delivery_id != first.delivery_id
    assert await store.get_delivery(first.delivery_id) == first
    assert await store.get_delivery(first.delivery_id, tenant_id="tenant-a") == first
    assert await store.get_delivery(first.delivery_id, tenant_id="tenant-b") is None
    assert await store.get_delivery("dlv_missing") is None


async def test_record_attempt_appends_and_sets_status(store: Store) -> None:
    delivery, _ = await store.create_delivery(new_delivery())
    failed = DeliveryAttempt(status_code=503, latency_ms=12, error="HTTP 503")
    after_one = await store.record_attempt(delivery.delivery_id, failed, DeliveryStatus.PENDING)
    ok = DeliveryAttempt(status_code=200, latency_ms=8, response_body="ok")
    after_two = await store.record_attempt(delivery.delivery_id, ok, DeliveryStatus.DELIVERED)
    assert after_one is not None
    assert after_two is not None
    assert [a.status_code for a in after_two.attempts] == [503, 200]
    assert after_two.status is DeliveryStatus.DELIVERED
    assert after_two.attempts[0].at == ms(failed.at)
    assert await store.get_delivery(delivery.delivery_id) == after_two
    assert await store.record_attempt("dlv_missing", ok, DeliveryStatus.FAILED) is None

    concurrent = await asyncio.gather(
        *(
            store.record_attempt(
                delivery.delivery_id, DeliveryAttempt(latency_ms=i), DeliveryStatus.PENDING
            )
            for i in range(10)
        )
    )
    assert all(concurrent)
    final = await store.get_delivery(delivery.delivery_id)
    assert final is not None
    assert len(final.attempts) == 12


async def test_record_attempt_sets_the_next_attempt_and_counts_the_schedule(
    store: Store,
) -> None:
    delivery, _ = await store.create_delivery(new_delivery(next_attempt_at=utcnow()))
    assert delivery.schedule_attempts == 0
    due = utcnow() + timedelta(seconds=30)
    retry = await store.record_attempt(
        delivery.delivery_id, DeliveryAttempt(status_code=503), DeliveryStatus.PENDING, due
    )
    assert retry is not None
    assert retry.next_attempt_at == ms(due)
    assert retry.schedule_attempts == 1
    assert await store.get_delivery(delivery.delivery_id) == retry
    # Delivered or failed: no next attempt, whatever the caller passed.
    done = await store.record_attempt(
        delivery.delivery_id, DeliveryAttempt(status_code=200), DeliveryStatus.DELIVERED, due
    )
    assert done is not None
    assert done.next_attempt_at is None
    assert done.schedule_attempts == 2
    assert await store.get_delivery(delivery.delivery_id) == done
    assert await store.claim_due_deliveries(due + timedelta(hours=1), due, 10) == []


async def test_claim_due_deliveries_takes_pending_ones_due_oldest_first(store: Store) -> None:
    now = ms(utcnow())

    async def make(event_id: str, due: datetime | None, **fields: object) -> Delivery:
        made, _ = await store.create_delivery(
            new_delivery(event_id=event_id, next_attempt_at=due, **fields)
        )
        return made

    second = await make("evt_second", now - timedelta(seconds=2))
    latest = await make("evt_latest", now)  # due exactly now: due
    first = await make("evt_first", now - timedelta(seconds=3))
    await make("evt_later", now + timedelta(seconds=1))
    await make("evt_done", now - timedelta(seconds=9), status=DeliveryStatus.DELIVERED)
    await make("evt_failed", now - timedelta(seconds=9), status=DeliveryStatus.FAILED)
    await make("evt_unscheduled", None)  # from before the store scheduled retries
    await make("evt_other_tenant", now - timedelta(seconds=1), tenant_id="tenant-b")

    lease = now + timedelta(minutes=1)
    claimed = await store.claim_due_deliveries(now, lease, 2)
    assert [d.event_id for d in claimed] == [first.event_id, second.event_id]
    assert all(d.next_attempt_at == lease for d in claimed)
    assert claimed[0].model_copy(update={"next_attempt_at": None}) == first.model_copy(
        update={"next_attempt_at": None}
    )
    for delivery in claimed:
        assert await store.get_delivery(delivery.delivery_id) == delivery
    rest = await store.claim_due_deliveries(now, lease, 10)
    assert [d.event_id for d in rest] == ["evt_other_tenant", latest.event_id]
    assert await store.claim_due_deliveries(now, lease, 10) == []
    with pytest.raises(ValueError, match="limit"):
        await store.claim_due_deliveries(now, lease, 0)


async def test_a_claimed_delivery_is_leased_until_the_lease_ends(store: Store) -> None:
    now = ms(utcnow())
    delivery, _ = await store.create_delivery(new_delivery(next_attempt_at=now))
    lease = now + timedelta(seconds=60)
    [claimed] = await store.claim_due_deliveries(now, lease, 10)
    assert claimed.delivery_id == delivery.delivery_id
    # Another notifier, even a little later: nothing while the lease holds.
    assert await store.claim_due_deliveries(now, now + timedelta(seconds=90), 10) == []
    assert await store.claim_due_deliveries(lease - timedelta(seconds=1), lease, 10) == []
    # The claimer died without recording an attempt: due again once the lease ended.
    later = lease + timedelta(seconds=60)
    [again] = await store.claim_due_deliveries(lease, later, 10)
    assert again.delivery_id == delivery.delivery_id
    assert again.next_attempt_at == later
    assert again.attempts == []
    # Recording the attempt replaces the lease with the next due time.
    due = later + timedelta(seconds=5)
    await store.record_attempt(
        delivery.delivery_id, DeliveryAttempt(status_code=500), DeliveryStatus.PENDING, due
    )
    assert await store.claim_due_deliveries(later, later, 10) == []
    [third] = await store.claim_due_deliveries(due, due + timedelta(seconds=60), 10)
    assert third.schedule_attempts == 1


async def claim_all(stores: list[Store], now: datetime, rounds: int) -> list[str]:
    """Concurrent claims from `stores`, `rounds` each; the ids claimed, in claim order."""
    lease = now + timedelta(minutes=5)

    async def claimer(store: Store) -> list[str]:
        got: list[str] = []
        for _ in range(rounds):
            got += [d.delivery_id for d in await store.claim_due_deliveries(now, lease, 7)]
        return got

    found = await asyncio.gather(*(claimer(s) for s in stores for _ in range(3)))
    return [delivery_id for ids in found for delivery_id in ids]


async def test_concurrent_claims_never_take_one_delivery_twice(store: Store) -> None:
    now = ms(utcnow())
    made = {
        (
            await store.create_delivery(
                new_delivery(event_id=f"evt_{i}", next_attempt_at=now - timedelta(seconds=i))
            )
        )[0].delivery_id
        for i in range(40)
    }
    claimed = await claim_all([store], now, rounds=3)
    assert len(claimed) == len(set(claimed))
    leftover = [d.delivery_id for d in await store.claim_due_deliveries(now, now, 100)]
    assert sorted(claimed + leftover) == sorted(made)


async def test_sqlite_claims_from_two_connections_never_take_one_delivery_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    stores = [SqliteStore(path), SqliteStore(path)]
    for one in stores:
        await one.start()
    try:
        now = ms(utcnow())
        made = set()
        for i in range(60):
            delivery, _ = await stores[0].create_delivery(
                new_delivery(event_id=f"evt_{i}", next_attempt_at=now)
            )
            made.add(delivery.delivery_id)
        claimed = await claim_all(list(stores), now, rounds=4)
        assert len(claimed) == len(set(claimed))
        leftover = [d.delivery_id for d in await stores[1].claim_due_deliveries(now, now, 100)]
        assert sorted(claimed + leftover) == sorted(made)
    finally:
        for one in stores:
            await one.close()


async def test_restart_delivery_starts_a_fresh_schedule_due_now(store: Store) -> None:
    delivery, _ = await store.create_delivery(new_delivery(next_attempt_at=utcnow()))
    for _ in range(3):
        await store.record_attempt(
            delivery.delivery_id, DeliveryAttempt(status_code=500), DeliveryStatus.PENDING
        )
    await store.record_attempt(
        delivery.delivery_id, DeliveryAttempt(status_code=500), DeliveryStatus.FAILED
    )
    now, requested = utcnow(), utcnow() - timedelta(seconds=1)
    restarted = await store.restart_delivery(delivery.delivery_id, now, requested)
    assert restarted is not None
    assert restarted.status is DeliveryStatus.PENDING
    assert restarted.schedule_attempts == 0
    assert restarted.next_attempt_at == ms(now)
    assert restarted.replayed_at == ms(requested)
    assert len(restarted.attempts) == 4
    assert await store.get_delivery(delivery.delivery_id) == restarted
    [claimed] = await store.claim_due_deliveries(now, now + timedelta(minutes=1), 10)
    assert claimed.delivery_id == delivery.delivery_id
    assert await store.restart_delivery("dlv_missing", now, None) is None


async def test_list_deliveries_pages_with_filters(store: Store) -> None:
    base = ms(utcnow() - timedelta(hours=1))
    made = []
    for i in range(23):
        delivery, _ = await store.create_delivery(
            new_delivery(
                event_id=f"evt_{i}",
                call_id=f"call-{i % 3}",
                event_type=["call.completed", "call.failed"][i % 2],
                status=[DeliveryStatus.PENDING, DeliveryStatus.FAILED][i % 2],
                created_at=base + timedelta(seconds=i // 2),
            )
        )
        made.append(delivery)
    await store.create_delivery(new_delivery("tenant-b", event_id="evt_b"))
    newest_first = sorted(made, key=lambda d: (d.created_at, d.delivery_id), reverse=True)

    async def read(filters: DeliveryFilter, limit: int) -> list[Delivery]:
        seen: list[Delivery] = []
        cursor = None
        while True:
            page = await store.list_deliveries("tenant-a", filters, limit, cursor)
            seen += page.deliveries
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    assert await read(DeliveryFilter(), 5) == newest_first
    assert await read(DeliveryFilter(call_id="call-1"), 2) == [
        d for d in newest_first if d.call_id == "call-1"
    ]
    failed = DeliveryFilter(status=DeliveryStatus.FAILED, event_type="call.failed")
    assert await read(failed, 4) == [d for d in newest_first if d.status is DeliveryStatus.FAILED]
    assert await read(DeliveryFilter(event_id="evt_7"), 5) == [made[7]]
    assert await read(DeliveryFilter(event_id="evt_b"), 5) == []  # another tenant's
    calls_cursor = encode_cursor("calls", Position(base, "x"))
    with pytest.raises(InvalidCursor):
        await store.list_deliveries("tenant-a", DeliveryFilter(), 5, calls_cursor)


# --- SQLite: several processes on one file ---------------------------------------------------

_CONTENDER = """
import asyncio, json, sys
from pathlib import Path
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.adapters.store.common.records import as_stored
from switchboard_shared.domain.batches import Batch, BatchCall, BatchState
from switchboard_shared.domain.blocked_numbers import BlockedNumber
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import CallStatus

async def main(path: str, name: str, reverse: bool, counter_id: str, increments: int) -> None:
    store = SqliteStore(Path(path))
    await store.start()
    ids = json.loads(sys.stdin.readline())
    print("ready", flush=True)
    sys.stdin.readline()  # go
    won = []
    for call_id in reversed(ids) if reverse else ids:
        claimed = await store.update_call(
            call_id,
            CallChanges(status=CallStatus.DIALING, provider=name),
            guard=CallGuard(statuses=frozenset({CallStatus.QUEUED})),
            bump_sequence=True,
        )
        if claimed is not None:
            won.append(call_id)
    done = 0
    while done < increments:  # read, then compare-and-set on the sequence
        current = await store.get_call(counter_id)
        if await store.update_call(
            counter_id,
            CallChanges(),
            guard=CallGuard(sequence=current.sequence),
            bump_sequence=True,
        ):
            done += 1
    await store.close()
    print(json.dumps(won), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])))
"""


async def test_sqlite_conditional_updates_are_atomic_across_processes(tmp_path: Path) -> None:
    from switchboard_shared.adapters.store.sqlite import SqliteStore

    path = tmp_path / "nested" / "shared.db"
    store = SqliteStore(path)
    await store.start()
    try:
        ids = [(await store.insert_call(new_call(), TTL))[0].call_id for _ in range(150)]
        counter, _ = await store.insert_call(new_call(), TTL)
        increments = 40
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CONTENDER,
                str(path),
                name,
                reverse,
                counter.call_id,
                str(increments),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for name, reverse in (("one", "0"), ("two", "1"))
        ]
        for proc in procs:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(json.dumps(ids).encode() + b"\n")
            await proc.stdin.drain()
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), 30) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0]
        won = [set(json.loads(out)) for out, _ in outputs]

        assert not won[0] & won[1]
        assert won[0] | won[1] == set(ids)
        for name, claimed in zip(("one", "two"), won, strict=True):
            for call_id in claimed:
                call = await store.get_call(call_id)
                assert call is not None
                assert (call.provider, call.sequence) == (name, 2)
        final = await store.get_call(counter.call_id)
        assert final is not None
        assert final.sequence == 1 + 2 * increments
    finally:
        await store.close()


# --- MongoDB: indexes and reachability -------------------------------------------------------


def plan_stages(plan: object) -> list[dict[str, object]]:
    """Every stage of an explain plan, whatever the nesting: mongod nests `inputStage(s)`
    (and, with the slot-based engine, a `queryPlan`); SecantusDB uses the classic shape."""
    found: list[dict[str, object]] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append(plan)
        for value in plan.values():
            found += plan_stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found += plan_stages(value)
    return found


LISTING_FILTERS = {
    "calls_by_tenant_created": CallFilter(),
    "calls_by_tenant_status_created": CallFilter(status=CallStatus.COMPLETED),
    "calls_by_tenant_agent_created": CallFilter(agent="altynai"),
    "calls_by_tenant_status_agent_created": CallFilter(
        status=CallStatus.COMPLETED,
        agent="altynai",
        created_after=datetime(2024, 1, 1, tzinfo=UTC),
        created_before=datetime(2030, 1, 1, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize("index_name", list(LISTING_FILTERS))
async def test_mongo_call_listing_is_served_by_an_index(
    mongodb_url: str, unique_name: str, index_name: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.queries import call_list_queries

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        await seed_calls(store, "tenant-a", 12, ms(utcnow() - timedelta(hours=1)))
        filters = LISTING_FILTERS[index_name]
        cursor_at = Position(ms(utcnow() - timedelta(minutes=30)), "5" * 36)
        queries = [
            *call_list_queries("tenant-a", filters, None, 21),
            *call_list_queries("tenant-a", filters, cursor_at, 21),
        ]
        assert len(queries) == 3  # first page; after a cursor: ties, then older calls
        for query in queries:
            explained = await client[unique_name].command(
                "explain",
                {"find": "calls", "filter": query.filter, "sort": dict(query.sort), "limit": 21},
                verbosity="queryPlanner",
            )
            stages = plan_stages(explained["queryPlanner"]["winningPlan"])
            names = [stage["stage"] for stage in stages]
            assert "COLLSCAN" not in names, (query, explained)
            scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
            assert scans, (query, explained)
            assert {stage.get("indexName") for stage in scans} == {index_name}
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


async def test_mongo_start_raises_store_error_when_unreachable(unique_name: str) -> None:
    from switchboard_shared.adapters.store.mongo import MongoStore

    url = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    store = MongoStore(url, unique_name, timeout_ms=300)
    with pytest.raises(StoreError):
        await store.start()
    with pytest.raises(StoreError):
        await store.ping()


async def test_mongo_ping_raises_store_error_when_the_server_goes_away(
    mongodb_url: str, unique_name: str
) -> None:
    from pymongo.uri_parser import parse_uri

    from switchboard_shared.adapters.store.mongo import MongoStore

    parsed = parse_uri(mongodb_url)
    host, port = parsed["nodelist"][0]
    proxy = CuttableProxy(free_port(), host, port)
    await proxy.start()
    credentials = ""
    if parsed["username"]:
        credentials = f"{quote(parsed['username'])}:{quote(parsed['password'] or '')}@"
    url = f"mongodb://{credentials}127.0.0.1:{proxy.port}/?directConnection=true"
    store = MongoStore(url, unique_name, timeout_ms=500)
    try:
        await store.start()
        await store.ping()
        await proxy.cut()
        with pytest.raises(StoreError):
            await store.ping()
    finally:
        await store.close()
        await proxy.cut()


async def test_sqlite_opens_a_file_from_before_the_watchdog_deadline_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    await store.start()
    call, _ = await store.insert_call(new_call(), TTL)
    await store.close()
    # What a file written before `watchdog_deadline` existed looks like.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX calls_by_status_deadline")
        conn.execute("ALTER TABLE calls DROP COLUMN watchdog_deadline")
        conn.commit()

    reopened = SqliteStore(path)
    await reopened.start()
    try:
        stored = await reopened.get_call(call.call_id)
        assert stored is not None
        assert stored.watchdog_deadline is None
        deadline = utcnow() - timedelta(minutes=1)
        await reopened.update_call(call.call_id, CallChanges(watchdog_deadline=deadline))
        found = await reopened.find_calls(deadline_before=utcnow())
        assert [c.call_id for c in found] == [call.call_id]
    finally:
        await reopened.close()


async def test_mongo_due_deliveries_are_served_by_an_index(
    mongodb_url: str, unique_name: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.queries import due_delivery_query

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        now = ms(utcnow())
        for i in range(12):
            await store.create_delivery(
                new_delivery(
                    event_id=f"evt_{i}",
                    next_attempt_at=now - timedelta(seconds=i),
                    status=[DeliveryStatus.PENDING, DeliveryStatus.DELIVERED][i % 2],
                )
            )
        query = due_delivery_query(now, 50)
        explained = await client[unique_name].command(
            "explain",
            {"find": "deliveries", "filter": query.filter, "sort": dict(query.sort), "limit": 50},
            verbosity="queryPlanner",
        )
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        names = [stage["stage"] for stage in stages]
        assert "COLLSCAN" not in names, explained
        scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
        assert {stage.get("indexName") for stage in scans} == {"deliveries_by_due"}, explained
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


# Listings of a tenant's deliveries by event (the notifier's, on every event), call and
# status each read an index of their own, in the listing's order: no sort, no walk of
# the tenant's whole log.
DELIVERY_LISTINGS = {
    "event": (DeliveryFilter(event_id="evt_3", status=DeliveryStatus.FAILED), BY_EVENT),
    "call": (DeliveryFilter(call_id="call-4"), BY_CALL),
    "status": (DeliveryFilter(status=DeliveryStatus.FAILED), BY_STATUS),
    "tenant": (DeliveryFilter(), BY_TENANT),
}


async def _listed_deliveries(store: Store, filters: DeliveryFilter) -> None:
    """Twelve deliveries of two tenants; the listing finds exactly the matching ones."""
    for i in range(12):
        await store.create_delivery(
            new_delivery(
                tenant_id="tenant-b" if i % 3 == 2 else "tenant-a",
                event_id=f"evt_{i % 6}",
                call_id=f"call-{i % 5}",
                url=f"https://a.example/hook{i}",
                status=DeliveryStatus.FAILED if i % 4 >= 2 else DeliveryStatus.PENDING,
            )
        )
    page = await store.list_deliveries("tenant-a", filters, 50, None)
    everything = await store.list_deliveries("tenant-a", DeliveryFilter(), 50, None)
    expected = [
        d.delivery_id
        for d in everything.deliveries
        if all(
            getattr(d, field) == value
            for field, value in filters.model_dump(exclude_none=True).items()
        )
    ]
    assert [d.delivery_id for d in page.deliveries] == expected
    assert expected or filters == DeliveryFilter(), "the case matches some deliveries"


@pytest.mark.parametrize("case", list(DELIVERY_LISTINGS))
async def test_sqlite_delivery_listings_read_their_own_index(tmp_path: Path, case: str) -> None:
    filters, index = DELIVERY_LISTINGS[case]
    assert delivery_listing_index(filters) == index
    path = tmp_path / "plan.db"
    store = SqliteStore(path)
    await store.start()
    try:
        await _listed_deliveries(store, filters)
    finally:
        await store.close()
    clauses = " AND ".join(
        f"{field} = ?" for field in ("tenant_id", *filters.model_dump(exclude_none=True))
    )
    with closing(sqlite3.connect(path)) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                f"EXPLAIN QUERY PLAN SELECT doc FROM deliveries INDEXED BY {index} "  # noqa: S608
                f"WHERE {clauses} ORDER BY created_at DESC, delivery_id DESC LIMIT 10",
                ["x"] * (clauses.count("?")),
            )
        )
    assert f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("case", list(DELIVERY_LISTINGS))
async def test_mongo_delivery_listings_read_their_own_index(
    mongodb_url: str, unique_name: str, case: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.queries import delivery_list_queries

    filters, index = DELIVERY_LISTINGS[case]
    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        await _listed_deliveries(store, filters)
        [query] = delivery_list_queries("tenant-a", filters, None, 11)
        explained = await client[unique_name].command(
            "explain",
            {
                "find": "deliveries",
                "filter": query.filter,
                "sort": dict(query.sort),
                "limit": 11,
                "hint": query.hint,
            },
            verbosity="queryPlanner",
        )
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        names = [stage["stage"] for stage in stages]
        # No check for a SORT stage: SecantusDB sorts after any index scan (mongod reads
        # these indexes in the listing's order).
        assert "COLLSCAN" not in names, explained
        scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
        assert {stage.get("indexName") for stage in scans} == {index}, explained
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


async def test_sqlite_due_deliveries_are_served_by_an_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    store = SqliteStore(path)
    await store.start()
    await store.close()
    with closing(sqlite3.connect(path)) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT next_attempt_at, doc FROM deliveries "
                "WHERE status = ? AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, delivery_id LIMIT ?",
                ("pending", 0, 10),
            )
        )
    assert "deliveries_by_due" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


async def test_mongo_due_calls_are_served_by_an_index(mongodb_url: str, unique_name: str) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.calls import call_sweep_order

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        now = ms(utcnow())
        for i in range(12):
            status = [CallStatus.SCHEDULED, CallStatus.COMPLETED][i % 2]
            await store.insert_call(
                new_call(status=status, next_attempt_at=now - timedelta(seconds=i)), TTL
            )
        explained = await client[unique_name].command(
            "explain",
            {
                "find": "calls",
                # The filter find_calls(statuses={scheduled}, due_before=now) sends.
                "filter": {"status": "scheduled", "next_attempt_at": {"$lte": now}},
                "sort": dict(call_sweep_order(due=True)),
                "limit": 50,
            },
            verbosity="queryPlanner",
        )
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        assert "COLLSCAN" not in [stage["stage"] for stage in stages], explained
        scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
        assert {stage.get("indexName") for stage in scans} == {"calls_by_status_next_attempt"}, (
            explained
        )
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


async def test_sqlite_due_calls_are_served_by_an_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    store = SqliteStore(path)
    await store.start()
    await store.close()
    with closing(sqlite3.connect(path)) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT doc FROM calls "
                "WHERE status IN (?) AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, call_id LIMIT ?",
                ("scheduled", 0, 10),
            )
        )
    assert "calls_by_status_next_attempt" in plan, plan


WAITING_QUERIES = {
    "lane": ("tenant-a", False, "calls_by_waiting_lane"),
    "lane_before": ("tenant-a", True, "calls_by_waiting_lane"),
    "before": (None, True, "calls_by_waiting_since"),
}


@pytest.mark.parametrize("case", list(WAITING_QUERIES))
async def test_mongo_waiting_calls_are_served_by_their_index(
    mongodb_url: str, unique_name: str, case: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.calls import waiting_calls_query

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        now = ms(utcnow())
        for i in range(12):
            call, _ = await store.insert_call(new_call(), TTL)
            if i % 3:
                since = now - timedelta(seconds=i)
                changes = CallChanges(waiting_lane=f"tenant-{'ab'[i % 2]}", waiting_since=since)
                await store.update_call(call.call_id, changes)
        lane, before, index_name = WAITING_QUERIES[case]
        # The query find_calls(waiting_lane=..., waiting_before=...) sends.
        query = waiting_calls_query(lane, now if before else None)
        assert query is not None
        assert query.hint == index_name
        explained = await client[unique_name].command(
            "explain",
            {
                "find": "calls",
                "filter": query.filter,
                "sort": dict(query.sort),
                "limit": 50,
                "hint": query.hint,
            },
            verbosity="queryPlanner",
        )
        stages = plan_stages(explained["queryPlanner"]["winningPlan"])
        assert "COLLSCAN" not in [stage["stage"] for stage in stages], explained
        scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
        assert {stage.get("indexName") for stage in scans} == {index_name}, explained
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


async def test_mongo_slot_queries_are_served_by_their_index(
    mongodb_url: str, unique_name: str
) -> None:
    from pymongo import AsyncMongoClient

    from switchboard_shared.adapters.store.mongo import MongoStore
    from switchboard_shared.adapters.store.mongo.slots import (
        BY_HOLDER,
        BY_SCOPE_HOLDER,
        BY_TAKEN_AT,
        scope_query,
        taken_before_query,
    )

    store = MongoStore(mongodb_url, unique_name)
    await store.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        for i in range(12):
            assert await store.take_slot(f"scope-{i % 3}", f"call-{i}", 10)
        # The finds take_slot / count_slots, release_slots and find_slots send.
        finds = [
            (scope_query("scope-1"), None, BY_SCOPE_HOLDER),
            ({"holder": "call-4"}, None, BY_HOLDER),
            (taken_before_query(utcnow()), {"taken_at": 1}, BY_TAKEN_AT),
        ]
        for query, sort, index_name in finds:
            command: dict[str, object] = {"find": "slots", "filter": query, "hint": index_name}
            if sort is not None:
                command |= {"sort": sort, "limit": 100}
            explained = await client[unique_name].command(
                "explain", command, verbosity="queryPlanner"
            )
            stages = plan_stages(explained["queryPlanner"]["winningPlan"])
            assert "COLLSCAN" not in [stage["stage"] for stage in stages], explained
            scans = [stage for stage in stages if stage["stage"] == "IXSCAN"]
            assert {stage.get("indexName") for stage in scans} == {index_name}, explained
    finally:
        await client.drop_database(unique_name)
        await client.close()
        await store.close()


async def test_sqlite_waiting_calls_and_slots_are_served_by_an_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    store = SqliteStore(path)
    await store.start()
    await store.close()
    # The statements find_calls(waiting_lane / waiting_before) and the slot store run.
    statements = {
        "calls_by_waiting_lane": (
            "SELECT doc FROM calls WHERE waiting_lane = ? AND waiting_since < ? "
            "ORDER BY waiting_since, call_id LIMIT ?",
            ("tenant-a", 0, 10),
        ),
        "calls_by_waiting_since": (
            "SELECT doc FROM calls WHERE waiting_since < ? ORDER BY waiting_since, call_id LIMIT ?",
            (0, 10),
        ),
        "sqlite_autoindex_slots_1": ("SELECT COUNT(*) FROM slots WHERE scope = ?", ("a",)),
        "slots_by_holder": ("DELETE FROM slots WHERE holder = ? RETURNING scope", ("h",)),
        "slots_by_taken_at": (
            "SELECT scope, holder, taken_at FROM slots WHERE taken_at < ? "
            "ORDER BY taken_at, scope, holder LIMIT ?",
            (0, 10),
        ),
    }
    with closing(sqlite3.connect(path)) as conn:
        for index_name, (sql, params) in statements.items():
            plan = " ".join(
                str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            assert index_name in plan, (sql, plan)


async def test_sqlite_opens_a_file_from_before_calls_waited_for_slots(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    await store.start()
    call, _ = await store.insert_call(new_call(), TTL)
    await store.close()
    # What a file written before the waiting columns (and slots) existed looks like.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX calls_by_waiting_lane")
        conn.execute("DROP INDEX calls_by_waiting_since")
        conn.execute("ALTER TABLE calls DROP COLUMN waiting_lane")
        conn.execute("ALTER TABLE calls DROP COLUMN waiting_since")
        conn.execute("DROP TABLE slots")
        conn.commit()

    reopened = SqliteStore(path)
    await reopened.start()
    try:
        stored = await reopened.get_call(call.call_id)
        assert stored is not None
        assert (stored.waiting_lane, stored.waiting_since) == (None, None)
        since = ms(utcnow() - timedelta(minutes=1))
        await reopened.update_call(
            call.call_id, CallChanges(waiting_lane="tenant-a", waiting_since=since)
        )
        found = await reopened.find_calls(waiting_lane="tenant-a", waiting_before=utcnow())
        assert [c.call_id for c in found] == [call.call_id]
        assert await reopened.take_slot("tenant-a", call.call_id, 1)
    finally:
        await reopened.close()


async def test_sqlite_opens_a_file_from_before_deliveries_were_scheduled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    await store.start()
    old, _ = await store.create_delivery(new_delivery())
    await store.close()
    # What a file written before `next_attempt_at` existed looks like.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX deliveries_by_due")
        conn.execute("ALTER TABLE deliveries DROP COLUMN next_attempt_at")
        doc = json.loads(conn.execute("SELECT doc FROM deliveries").fetchone()[0])
        for name in ("next_attempt_at", "schedule_attempts", "replayed_at"):
            del doc[name]
        conn.execute("UPDATE deliveries SET doc = ?", (json.dumps(doc),))
        conn.commit()

    reopened = SqliteStore(path)
    await reopened.start()
    try:
        stored = await reopened.get_delivery(old.delivery_id)
        assert stored is not None
        assert (stored.next_attempt_at, stored.schedule_attempts) == (None, 0)
        now = utcnow()
        assert await reopened.claim_due_deliveries(now, now, 10) == []
        await reopened.restart_delivery(old.delivery_id, now, None)
        [claimed] = await reopened.claim_due_deliveries(now, now + timedelta(minutes=1), 10)
        assert claimed.delivery_id == old.delivery_id
    finally:
        await reopened.close()
