"""The SessionStore contract, run against both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import (
    Session,
    SessionEndReason,
    SessionStatus,
    TranscriptTurn,
)
from switchboard_shared.ports import ActiveSessionExists, IdempotencyConflict, Store
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(60)

TTL = 3600.0


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    async with open_store(kind, tmp_path=tmp_path, mongodb_url=url) as started:
        yield started


def new_session(key: str = "key-a", tenant: str = "tenant-a", **fields: object) -> Session:
    values: dict[str, object] = {
        "tenant_id": tenant,
        "api_key_id": key,
        "tier": Tier.BASIC,
        "prompt": "Be brief.",
        "language": "en",
        "max_duration": 300,
        **fields,
    }
    return Session.model_validate(values)


async def test_a_session_round_trips(store: Store) -> None:
    stored, created = await store.insert_session(new_session(variables={"a": 1}), TTL)
    assert created
    assert stored.expires_at == stored.started_at + timedelta(seconds=300)
    assert await store.get_session(stored.session_id) == stored
    assert await store.get_session(stored.session_id, "tenant-a") == stored
    assert await store.get_session(stored.session_id, "tenant-b") is None


async def test_one_active_session_per_api_key(store: Store) -> None:
    first, _ = await store.insert_session(new_session(), TTL)
    with pytest.raises(ActiveSessionExists) as refused:
        await store.insert_session(new_session(), TTL)
    assert refused.value.session_id == first.session_id
    _other_key, created = await store.insert_session(new_session(key="key-b"), TTL)
    assert created
    assert await store.end_session(first.session_id, SessionEndReason.MANUAL) is not None
    again, created = await store.insert_session(new_session(), TTL)
    assert created
    assert again.session_id != first.session_id


async def test_concurrent_creates_for_one_key_leave_one_active(store: Store) -> None:
    results = await asyncio.gather(
        *(store.insert_session(new_session(key="key-c"), TTL) for _ in range(8)),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, ActiveSessionExists)]
    assert len(made) == 1
    assert len(refused) == 7
    assert {r.session_id for r in refused} == {made[0][0].session_id}


async def test_an_idempotency_key_returns_the_first_session(store: Store) -> None:
    first, created = await store.insert_session(
        new_session(idempotency_key="k1", request_fingerprint="f1"), TTL
    )
    assert created
    again, created = await store.insert_session(
        new_session(idempotency_key="k1", request_fingerprint="f1"), TTL
    )
    assert (again, created) == (first, False)
    with pytest.raises(IdempotencyConflict):
        await store.insert_session(new_session(idempotency_key="k1", request_fingerprint="f2"), TTL)


async def test_the_first_end_wins(store: Store) -> None:
    session, _ = await store.insert_session(new_session(), TTL)
    ended_at = session.started_at + timedelta(seconds=47, milliseconds=600)
    ended = await store.end_session(session.session_id, SessionEndReason.MANUAL, ended_at)
    assert ended is not None
    assert (ended.status, ended.reason, ended.duration) == (
        SessionStatus.ENDED,
        SessionEndReason.MANUAL,
        47,
    )
    assert ended.notify_pending
    assert ended.elapsed().model_dump() == {"total_seconds": 47, "display": "0m 47s"}
    late = await store.end_session(session.session_id, SessionEndReason.TIMEOUT)
    assert late is None
    assert await store.get_session(session.session_id) == ended


async def test_a_timeout_ends_with_status_timeout_and_at_most_max_duration(store: Store) -> None:
    session, _ = await store.insert_session(new_session(max_duration=60), TTL)
    late = session.started_at + timedelta(seconds=75)
    ended = await store.end_session(session.session_id, SessionEndReason.TIMEOUT, late)
    assert ended is not None
    assert (ended.status, ended.duration) == (SessionStatus.TIMEOUT, 60)


async def test_transcript_turns_append_while_active_only(store: Store) -> None:
    session, _ = await store.insert_session(new_session(), TTL)
    hello = TranscriptTurn(role="agent", text="Hello!")
    hi = TranscriptTurn(role="user", text="Hi")
    await store.add_transcript_turns(session.session_id, [hello])
    updated = await store.add_transcript_turns(session.session_id, [hi])
    assert updated is not None
    assert [(t.role, t.text) for t in updated.transcript] == [("agent", "Hello!"), ("user", "Hi")]
    await store.end_session(session.session_id, SessionEndReason.MANUAL)
    assert await store.add_transcript_turns(session.session_id, [hi]) is None


async def test_provider_fields_are_set_while_active(store: Store) -> None:
    session, _ = await store.insert_session(new_session(), TTL)
    updated = await store.set_session_provider(session.session_id, "simulator", "sim-sess-1")
    assert updated is not None
    assert (updated.provider, updated.provider_session_id) == ("simulator", "sim-sess-1")


async def test_list_sessions_newest_first_with_status_and_offset(store: Store) -> None:
    base = utcnow() - timedelta(minutes=10)
    ids = []
    for i in range(5):
        session, _ = await store.insert_session(
            new_session(key=f"key-{i}", started_at=base + timedelta(seconds=i)), TTL
        )
        ids.append(session.session_id)
    await store.end_session(ids[1], SessionEndReason.MANUAL)
    await store.insert_session(new_session(key="other", tenant="tenant-b"), TTL)
    page = await store.list_sessions("tenant-a", None, limit=2, offset=0)
    assert page.total == 5
    assert [s.session_id for s in page.sessions] == [ids[4], ids[3]]
    page = await store.list_sessions("tenant-a", None, limit=2, offset=4)
    assert [s.session_id for s in page.sessions] == [ids[0]]
    active = await store.list_sessions("tenant-a", SessionStatus.ACTIVE, limit=10, offset=0)
    assert active.total == 4
    assert ids[1] not in [s.session_id for s in active.sessions]
    ended = await store.list_sessions("tenant-a", SessionStatus.ENDED, limit=10, offset=0)
    assert [s.session_id for s in ended.sessions] == [ids[1]]


async def test_find_sessions_past_their_max_duration(store: Store) -> None:
    now = utcnow()
    old, _ = await store.insert_session(
        new_session(key="k1", max_duration=10, started_at=now - timedelta(seconds=30)), TTL
    )
    long, _ = await store.insert_session(
        new_session(key="k2", max_duration=3600, started_at=now - timedelta(seconds=30)), TTL
    )
    ended, _ = await store.insert_session(
        new_session(key="k3", max_duration=10, started_at=now - timedelta(seconds=30)), TTL
    )
    await store.end_session(ended.session_id, SessionEndReason.MANUAL)
    expired = await store.find_sessions(expiring_before=now)
    assert [s.session_id for s in expired] == [old.session_id]
    assert long.session_id not in [s.session_id for s in expired]


async def test_notify_pending_is_found_and_cleared(store: Store) -> None:
    session, _ = await store.insert_session(new_session(), TTL)
    assert await store.find_sessions(notify_pending=True) == []
    await store.end_session(session.session_id, SessionEndReason.MANUAL)
    pending = await store.find_sessions(notify_pending=True)
    assert [s.session_id for s in pending] == [session.session_id]
    await store.mark_session_notified(session.session_id)
    assert await store.find_sessions(notify_pending=True) == []


async def test_session_usage_counts_and_sums_ended_durations(store: Store) -> None:
    first, _ = await store.insert_session(new_session(key="k1"), TTL)
    await store.insert_session(new_session(key="k2"), TTL)
    await store.insert_session(new_session(key="k3", tenant="tenant-b"), TTL)
    end = first.started_at + timedelta(seconds=47)
    await store.end_session(first.session_id, SessionEndReason.MANUAL, end)
    usage = await store.session_usage("tenant-a")
    assert (usage.total_sessions, usage.session_seconds, usage.active_sessions) == (2, 47, 1)
    empty = await store.session_usage("tenant-z")
    assert (empty.total_sessions, empty.session_seconds, empty.active_sessions) == (0, 0, 0)


async def test_a_join_token_is_used_once(store: Store) -> None:
    expires = utcnow() + timedelta(minutes=1)
    assert await store.use_join_token("tok-1", expires)
    assert not await store.use_join_token("tok-1", expires)
    results = await asyncio.gather(*(store.use_join_token("tok-2", expires) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_sessions_nobody_relays_are_found_and_touch_keeps_them_alive(store: Store) -> None:
    now = utcnow()
    stale, _ = await store.insert_session(
        new_session(key="k1", alive_until=now - timedelta(seconds=1)), TTL
    )
    kept, _ = await store.insert_session(
        new_session(key="k2", alive_until=now - timedelta(seconds=1)), TTL
    )
    touched = await store.touch_session(kept.session_id, now + timedelta(seconds=10))
    assert touched is not None
    # The record says it too, not only the index the sweep reads.
    alive_until = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(seconds=10)
    assert touched.alive_until == alive_until
    assert touched.updated_at >= kept.updated_at
    assert await store.get_session(kept.session_id) == touched
    abandoned = await store.find_sessions(abandoned_before=now)
    assert [s.session_id for s in abandoned] == [stale.session_id]
    await store.end_session(stale.session_id, SessionEndReason.MANUAL)
    assert await store.find_sessions(abandoned_before=now) == []
    assert await store.touch_session(stale.session_id, now) is None


async def test_a_session_is_found_by_its_provider_session_id(store: Store) -> None:
    served, _ = await store.insert_session(new_session(key="key-p"), TTL)
    other, _ = await store.insert_session(new_session(key="key-q"), TTL)
    await store.set_session_provider(served.session_id, "elevenlabs", "conv_1")
    await store.set_session_provider(other.session_id, "simulator", "conv_1")
    found = await store.find_session_by_provider_id("elevenlabs", "conv_1")
    assert found is not None
    assert found.session_id == served.session_id
    found = await store.find_session_by_provider_id("simulator", "conv_1")
    assert found is not None
    assert found.session_id == other.session_id
    assert await store.find_session_by_provider_id("elevenlabs", "conv_2") is None
    # Still found once ended: a provider's webhook comes after the end.
    await store.end_session(served.session_id, SessionEndReason.MANUAL)
    found = await store.find_session_by_provider_id("elevenlabs", "conv_1")
    assert found is not None
    assert found.status is SessionStatus.ENDED


async def test_a_transcript_is_filled_with_the_missing_tail_only(store: Store) -> None:
    stored, _ = await store.insert_session(new_session(key="key-f"), TTL)
    edge = [TranscriptTurn(role="agent", text="Hello"), TranscriptTurn(role="user", text="Hi")]
    await store.add_transcript_turns(stored.session_id, edge)
    reported = [
        TranscriptTurn(role="agent", text="Hello!"),  # the provider's wording: not rewritten
        TranscriptTurn(role="user", text="Hi"),
        TranscriptTurn(role="agent", text="How can I help?"),
    ]
    filled = await store.fill_session_transcript(stored.session_id, reported)
    assert filled is not None
    assert [t.text for t in filled.transcript] == ["Hello", "Hi", "How can I help?"]
    # The same report again, or a shorter one, changes nothing.
    again = await store.fill_session_transcript(stored.session_id, reported)
    assert again is not None
    assert again.transcript == filled.transcript
    shorter = await store.fill_session_transcript(stored.session_id, reported[:1])
    assert shorter is not None
    assert shorter.transcript == filled.transcript
    # An ended session is filled too, and stays ended.
    await store.end_session(stored.session_id, SessionEndReason.CLIENT_DISCONNECTED)
    later = [*reported, TranscriptTurn(role="user", text="Bye")]
    ended = await store.fill_session_transcript(stored.session_id, later)
    assert ended is not None
    assert ended.status is SessionStatus.ENDED
    assert [t.text for t in ended.transcript][-1] == "Bye"
    fetched = await store.get_session(stored.session_id)
    assert fetched is not None
    assert len(fetched.transcript) == 4
    assert await store.fill_session_transcript("sess_unknown", reported) is None


async def test_concurrent_fills_append_the_tail_once(store: Store) -> None:
    stored, _ = await store.insert_session(new_session(key="key-g"), TTL)
    reported = [TranscriptTurn(role="agent", text=f"turn {i}") for i in range(4)]
    await asyncio.gather(
        *(store.fill_session_transcript(stored.session_id, reported) for _ in range(6))
    )
    fetched = await store.get_session(stored.session_id)
    assert fetched is not None
    assert [t.text for t in fetched.transcript] == [t.text for t in reported]
