"""The reconciler covers queued calls the broker lost: a `call.requested` (or its retry)
that never came back is republished, and a dial claim left by a dialer that died
mid-request is settled with the provider before anyone dials again, so every call is
dialed once. Callbacks carry our signed reference, so they land even when the dialer
never stored the provider's call id. Calls are dialed for real through the simulator;
ages are moved into the past instead of waiting."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from switchboard_dialer.dialing import CallDialer
from switchboard_dialer.watchdog import CallWatchdog
from switchboard_shared.calls import callback_signing
from switchboard_shared.calls.callback_signing import REFERENCE_PARAMETER, callback_reference
from switchboard_shared.calls.events import EventType
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.ports import ProviderCallRequest
from tests.support.net import eventually
from tests.support.pipeline_parts import (
    AGENT_MAX_DURATION,
    CALLBACK_SECRETS,
    NORMAL_NUMBER,
    Pipeline,
    message_context,
    queued_call,
    running_pipeline,
)

pytestmark = pytest.mark.timeout(60)

QUEUED_AFTER = 5.0
LONG_AGO = timedelta(seconds=120)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with running_pipeline(tmp_path, watchdog_grace_seconds=1) as p:
        yield p


@pytest.fixture
async def pipeline_with_ingest(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with running_pipeline(tmp_path, with_ingest=True, watchdog_grace_seconds=1) as p:
        yield p


def parts(p: Pipeline) -> tuple[CallDialer, CallWatchdog]:
    dialer = CallDialer(p.store, p.bus, p.providers, p.settings)
    watchdog = CallWatchdog(
        p.store, p.bus, p.providers, dialer=dialer, queued_after_seconds=QUEUED_AFTER
    )
    return dialer, watchdog


async def lost_request(p: Pipeline, **fields: object) -> Call:
    """A queued call whose `call.requested` was published, then lost in the broker."""
    call = await queued_call(p.store, **fields)
    await p.store.mark_published([(call.call_id, call.sequence)])
    aged = await p.store.update_call(call.call_id, CallChanges(updated_at=utcnow() - LONG_AGO))
    assert aged is not None
    assert not aged.publish_pending
    return aged


async def dialer_died_mid_request(
    p: Pipeline, *, agent: str = "sim-agent", provider: str = "simulator", placed: bool
) -> Call:
    """A call claimed by a dialer that died: after the provider accepted the create when
    `placed`, before sending it otherwise. Its claim is long stale."""
    call = await lost_request(p, agent=agent)
    past = utcnow() - LONG_AGO
    claimed = await p.store.update_call(
        call.call_id, CallChanges(dial_claim="dead-dialer", dialing_at=past, updated_at=past)
    )
    assert claimed is not None
    if placed:
        secret = CALLBACK_SECRETS[provider]
        reference = callback_reference(secret, call.call_id)
        await p.providers[provider].create_call(
            ProviderCallRequest(
                call_id=call.call_id,
                to_number=call.phone,
                from_number=None,
                provider_agent_id="sim-agent-altynai",
                variables={},
                callback_url=(
                    f"{p.callback_url}/v1/webhooks/providers/{provider}"
                    f"?{REFERENCE_PARAMETER}={reference}"
                ),
            )
        )
    return claimed


async def dials_of(p: Pipeline, phone: str) -> int:
    return collections.Counter(c["to_number"] for c in await p.sim_calls())[phone]


async def test_a_queued_call_whose_request_was_lost_is_redriven_and_dialed_once(
    pipeline: Pipeline,
) -> None:
    dialer, watchdog = parts(pipeline)
    await pipeline.bus.subscribe(dialer.subscription())
    call = await lost_request(pipeline)

    assert await watchdog.run_once() == 1

    async def dialed() -> Call | None:
        current = await pipeline.store.get_call(call.call_id)
        return current if current and current.status is CallStatus.DIALING else None

    await eventually(dialed)
    assert await dials_of(pipeline, NORMAL_NUMBER) == 1
    # Republished as the same event: consumers dedupe it.
    requested = pipeline.events.of(call.call_id, EventType.CALL_REQUESTED)
    assert [e.id for e in requested] == [f"evt_{call.call_id.replace('-', '')}_1"]
    # Re-driven once: the call changed, so the next round leaves it alone.
    assert await watchdog.run_once() == 0


async def test_recent_queued_calls_and_live_claims_are_left_alone(pipeline: Pipeline) -> None:
    _, watchdog = parts(pipeline)
    fresh = await queued_call(pipeline.store)
    await pipeline.store.mark_published([(fresh.call_id, fresh.sequence)])
    claimed = await lost_request(pipeline)
    await pipeline.store.update_call(
        claimed.call_id,
        CallChanges(dial_claim="busy-dialer", dialing_at=utcnow(), updated_at=utcnow() - LONG_AGO),
    )
    pending = await queued_call(pipeline.store)  # the outbox relay's to publish
    await pipeline.store.update_call(pending.call_id, CallChanges(updated_at=utcnow() - LONG_AGO))

    assert await watchdog.run_once() == 0
    assert pipeline.events.events == []
    assert await dials_of(pipeline, NORMAL_NUMBER) == 0


async def test_a_stale_claim_the_provider_placed_is_recorded_not_dialed_again(
    pipeline: Pipeline,
) -> None:
    dialer, watchdog = parts(pipeline)
    await pipeline.bus.subscribe(dialer.subscription())
    call = await dialer_died_mid_request(pipeline, placed=True)

    assert await watchdog.run_once() == 1

    recorded = await pipeline.store.get_call(call.call_id)
    assert recorded is not None
    assert recorded.status is not CallStatus.QUEUED
    assert recorded.provider == "simulator"
    assert recorded.provider_call_id is not None
    assert recorded.watchdog_deadline is not None or recorded.status.is_terminal
    assert await dials_of(pipeline, NORMAL_NUMBER) == 1


async def test_the_consumer_settles_a_stale_claim_the_same_way(pipeline: Pipeline) -> None:
    dialer, _ = parts(pipeline)
    call = await dialer_died_mid_request(pipeline, placed=True)
    await dialer.dial(call.call_id, message_context())

    recorded = await pipeline.store.get_call(call.call_id)
    assert recorded is not None
    assert recorded.provider_call_id is not None
    assert await dials_of(pipeline, NORMAL_NUMBER) == 1


async def test_a_stale_claim_the_provider_never_got_is_dialed_once(pipeline: Pipeline) -> None:
    dialer, watchdog = parts(pipeline)
    await pipeline.bus.subscribe(dialer.subscription())
    call = await dialer_died_mid_request(pipeline, placed=False)

    assert await watchdog.run_once() == 1

    async def dialed() -> Call | None:
        current = await pipeline.store.get_call(call.call_id)
        return current if current and current.provider_call_id else None

    placed = await eventually(dialed)
    assert placed.dial_claim not in (None, "dead-dialer")
    assert await dials_of(pipeline, NORMAL_NUMBER) == 1


async def test_without_a_lookup_a_stale_claim_is_never_redialed_and_ends_failed(
    pipeline: Pipeline,
) -> None:
    dialer, watchdog = parts(pipeline)
    await pipeline.bus.subscribe(dialer.subscription())
    call = await dialer_died_mid_request(
        pipeline, agent="vocode-agent", provider="vocode", placed=False
    )
    # Within the agent's max duration its callbacks may still come: wait for them.
    recent = utcnow() - timedelta(seconds=60)
    await pipeline.store.update_call(
        call.call_id, CallChanges(dialing_at=utcnow() - timedelta(seconds=30), updated_at=recent)
    )
    assert AGENT_MAX_DURATION > 30
    await watchdog.run_once()
    waiting = await pipeline.store.get_call(call.call_id)
    assert waiting is not None
    assert waiting.status is CallStatus.QUEUED
    assert waiting.dial_claim == "dead-dialer"

    await pipeline.store.update_call(
        call.call_id, CallChanges(dialing_at=utcnow() - LONG_AGO, updated_at=utcnow() - LONG_AGO)
    )
    await watchdog.run_once()

    ended = await pipeline.store.get_call(call.call_id)
    assert ended is not None
    assert ended.status is CallStatus.FAILED
    assert ended.ended_reason == "dial_unconfirmed"
    assert await dials_of(pipeline, NORMAL_NUMBER) == 0
    assert pipeline.events.of(call.call_id, EventType.CALL_COMPLETED)


async def test_callbacks_find_their_call_by_our_reference_when_the_dialer_never_recorded_it(
    pipeline_with_ingest: Pipeline,
) -> None:
    p = pipeline_with_ingest
    call = await dialer_died_mid_request(p, placed=True)

    async def completed() -> Call | None:
        current = await p.store.get_call(call.call_id)
        return current if current and current.status is CallStatus.COMPLETED else None

    done = await eventually(completed)
    assert done.provider == "simulator"
    assert done.provider_call_id is not None
    assert done.transcript
    assert p.events.of(call.call_id, EventType.CALL_COMPLETED)
    assert await dials_of(p, NORMAL_NUMBER) == 1


async def test_a_reference_we_did_not_sign_finds_no_call(pipeline_with_ingest: Pipeline) -> None:
    p = pipeline_with_ingest
    call = await lost_request(p)
    body = (
        b'{"event_type": "call.completed", "provider_call_id": "sim-forged", '
        b'"status": "completed", "duration": 3}'
    )
    headers = callback_signing.sign(CALLBACK_SECRETS["simulator"], body)
    forged = callback_reference("not-our-secret", call.call_id)
    async with httpx.AsyncClient(base_url=p.callback_url, timeout=10) as client:
        response = await client.post(
            "/v1/webhooks/providers/simulator",
            params={REFERENCE_PARAMETER: forged},
            content=body,
            headers=headers,
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_call"
    unchanged = await p.store.get_call(call.call_id)
    assert unchanged is not None
    assert unchanged.status is CallStatus.QUEUED
    assert unchanged.provider_call_id is None
