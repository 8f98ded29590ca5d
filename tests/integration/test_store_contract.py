"""The Store contract (ports.Store), run against every adapter: SQLite and MongoDB."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from switchboard_shared.adapters.paging import Position, encode_cursor
from switchboard_shared.adapters.store_sqlite import SqliteStore
from switchboard_shared.domain.agents import Agent
from switchboard_shared.domain.calls import Call, CallFilter, CallStatus, utcnow
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
from tests.support.net import free_port
from tests.support.stores import STORE_KINDS, StoreKind, open_store
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.timeout(60)

TTL = 3600.0
QUEUED = frozenset({CallStatus.QUEUED})


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
        {"status": CallStatus.DIALING, "provider": "simulator", "duration": 3},
        expected_statuses=QUEUED,
        expected={"provider_call_id": None},
    )
    assert updated is not None
    assert (updated.status, updated.provider, updated.duration) == ("dialing", "simulator", 3)
    assert updated.updated_at > call.updated_at
    assert updated.sequence == call.sequence
    assert updated.publish_pending == call.publish_pending
    assert await store.get_call(call.call_id) == updated


async def test_update_call_returns_none_when_a_guard_fails(store: Store) -> None:
    call, _ = await store.insert_call(new_call(provider_call_id="p-1"), TTL)
    failing_guards: list[dict[str, object]] = [
        {"expected_statuses": frozenset({CallStatus.DIALING})},
        {"expected": {"provider_call_id": None}},
        {"expected": {"provider_call_id": "p-2"}},
        {"expected": {"cancel_requested": True}},
        {"expected_statuses": QUEUED, "expected": {"provider_call_id": "p-2"}},
    ]
    for guard in failing_guards:
        assert await store.update_call(call.call_id, {"duration": 1}, **guard) is None  # type: ignore[arg-type]
    assert await store.update_call("missing", {"duration": 1}) is None
    assert await store.get_call(call.call_id) == call
    matched = await store.update_call(
        call.call_id,
        {"duration": 1},
        expected={"provider_call_id": "p-1", "cancel_requested": False, "transcript": None},
    )
    assert matched is not None
    assert matched.duration == 1
    # a guard may name the status twice: both must hold
    both = await store.update_call(
        call.call_id,
        {"duration": 2},
        expected_statuses=QUEUED,
        expected={"status": CallStatus.QUEUED, "duration": 1},
    )
    assert both is not None
    assert both.duration == 2
    contradiction = await store.update_call(
        call.call_id, {"duration": 3}, expected_statuses=QUEUED, expected={"status": "dialing"}
    )
    assert contradiction is None


async def test_update_call_refuses_unknown_fields_and_bad_values(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    with pytest.raises(ValueError, match="no field"):
        await store.update_call(call.call_id, {"colour": "red"})
    with pytest.raises(ValueError, match="no field"):
        await store.update_call(call.call_id, {}, expected={"colour": "red"})
    with pytest.raises(ValueError, match="on_fire"):
        await store.update_call(call.call_id, {"status": "on_fire"})
    with pytest.raises(ValueError, match="cannot change"):
        await store.update_call(call.call_id, {"call_id": "other"})


async def test_update_call_keeps_an_explicit_updated_at(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    past = datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    updated = await store.update_call(call.call_id, {"updated_at": past})
    assert updated is not None
    assert updated.updated_at == ms(past)


async def test_bump_sequence_and_mark_published_form_an_outbox(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    assert (call.sequence, call.publish_pending) == (1, True)
    await store.mark_published(call.call_id, 1)
    published = await store.get_call(call.call_id)
    assert published is not None
    assert not published.publish_pending

    bumped = await store.update_call(
        call.call_id, {"status": CallStatus.DIALING}, expected_statuses=QUEUED, bump_sequence=True
    )
    assert bumped is not None
    assert (bumped.sequence, bumped.publish_pending) == (2, True)
    again = await store.update_call(call.call_id, {"duration": 5}, bump_sequence=True)
    assert again is not None
    assert again.sequence == 3
    await store.mark_published(call.call_id, 2)  # stale: sequence 3 stays pending
    pending = await store.get_call(call.call_id)
    assert pending is not None
    assert pending.publish_pending
    await store.mark_published(call.call_id, 3)
    done = await store.get_call(call.call_id)
    assert done is not None
    assert not done.publish_pending
    assert done.sequence == 3
    await store.mark_published("missing", 1)


async def test_concurrent_conditional_updates_have_one_winner(store: Store) -> None:
    call, _ = await store.insert_call(new_call(), TTL)
    results = await asyncio.gather(
        *(
            store.update_call(
                call.call_id,
                {"status": CallStatus.DIALING, "provider_call_id": f"p-{i}"},
                expected_statuses=QUEUED,
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
            call.call_id, {"status": status, "updated_at": now - timedelta(minutes=minutes)}
        )
        assert updated is not None
        stale.append(updated)
    fresh, _ = await store.insert_call(new_call("tenant-b"), TTL)
    await store.mark_published(stale[0].call_id, 1)

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
            call.call_id, {"status": CallStatus.IN_PROGRESS, "watchdog_deadline": deadline}
        )
        assert updated is not None
        calls[name] = updated
    ended, _ = await store.insert_call(new_call(), TTL)
    await store.update_call(
        ended.call_id, {"status": CallStatus.COMPLETED, "watchdog_deadline": deadlines["overdue"]}
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


async def test_usage_counts_the_tenants_calls(store: Store) -> None:
    specs = [
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
    assert (usage.total_calls, usage.total_seconds, usage.active_calls) == (6, 90, 2)
    assert usage.by_status == {
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
from switchboard_shared.adapters.store_sqlite import SqliteStore
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
            {"status": CallStatus.DIALING, "provider": name},
            expected_statuses=frozenset({CallStatus.QUEUED}),
            bump_sequence=True,
        )
        if claimed is not None:
            won.append(call_id)
    done = 0
    while done < increments:  # read, then compare-and-set on the sequence
        current = await store.get_call(counter_id)
        if await store.update_call(
            counter_id, {}, expected={"sequence": current.sequence}, bump_sequence=True
        ):
            done += 1
    await store.close()
    print(json.dumps(won), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])))
"""


async def test_sqlite_conditional_updates_are_atomic_across_processes(tmp_path: Path) -> None:
    from switchboard_shared.adapters.store_sqlite import SqliteStore

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

    from switchboard_shared.adapters.store_mongo import MongoStore, call_list_queries

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
    from switchboard_shared.adapters.store_mongo import MongoStore

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

    from switchboard_shared.adapters.store_mongo import MongoStore

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
        await reopened.update_call(call.call_id, {"watchdog_deadline": deadline})
        found = await reopened.find_calls(deadline_before=utcnow())
        assert [c.call_id for c in found] == [call.call_id]
    finally:
        await reopened.close()
