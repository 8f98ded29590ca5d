"""The watchdog settles live calls past their deadline (agent max duration + grace): from
the provider's answer when it has one, else as failed `provider_timeout`. Calls are
dialed for real through the simulator; their dial time and deadline are moved into the
past instead of waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from switchboard_dialer.dialing import CallDialer
from switchboard_dialer.watchdog import CallWatchdog
from switchboard_shared.calls.events import EventType
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from tests.support.net import eventually
from tests.support.pipeline_parts import (
    AGENT_MAX_DURATION,
    NORMAL_NUMBER,
    Pipeline,
    message_context,
    queued_call,
    running_pipeline,
)

pytestmark = pytest.mark.timeout(60)

GRACE = 1.0
BUSY, NO_ANSWER, SILENT = "+15005550001", "+15005550002", "+15005550006"
OVERDUE = timedelta(seconds=AGENT_MAX_DURATION + GRACE + 5)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with running_pipeline(tmp_path) as p:
        yield p


def watchdog(p: Pipeline, batch_size: int = 500) -> CallWatchdog:
    return CallWatchdog(p.store, p.bus, p.providers, batch_size=batch_size)


async def dialed_call(p: Pipeline, *, agent: str = "sim-agent", phone: str = NORMAL_NUMBER) -> Call:
    """A call placed at the simulator; its callbacks go to a sink, so it stays `dialing`."""
    call = await queued_call(p.store, agent=agent, phone=phone)
    dialer = CallDialer(p.store, p.bus, p.providers, p.settings)
    await dialer.dial(call.call_id, message_context())
    dialed = await p.store.get_call(call.call_id)
    assert dialed is not None
    assert dialed.status is CallStatus.DIALING
    return dialed


async def provider_says(p: Pipeline, call: Call, status: str) -> None:
    assert call.provider_call_id is not None
    provider_call_id = call.provider_call_id

    async def there() -> bool:
        return (await p.sim_call(provider_call_id))["status"] == status

    await eventually(there)


async def age(p: Pipeline, call: Call, by: timedelta) -> None:
    """As if the call had been dialed, and last changed, `by` ago."""
    past = utcnow() - by
    deadline = past + timedelta(seconds=AGENT_MAX_DURATION + GRACE)
    aged = await p.store.update_call(
        call.call_id, CallChanges(dialing_at=past, updated_at=past, watchdog_deadline=deadline)
    )
    assert aged is not None


async def test_the_dialer_sets_the_deadline_from_the_agents_max_duration(
    pipeline: Pipeline,
) -> None:
    before = utcnow()
    call = await dialed_call(pipeline)
    grace = pipeline.settings.watchdog_grace_seconds
    assert call.watchdog_deadline is not None
    expected = before + timedelta(seconds=AGENT_MAX_DURATION + grace)
    assert expected <= call.watchdog_deadline <= expected + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("agent", "phone", "status", "reason"),
    [
        ("sim-agent", NORMAL_NUMBER, CallStatus.COMPLETED, "customer_hangup"),
        ("vocode-agent", NORMAL_NUMBER, CallStatus.COMPLETED, "completed"),
        ("voxpria-agent", NORMAL_NUMBER, CallStatus.COMPLETED, "completed"),
        ("sim-agent", BUSY, CallStatus.BUSY, "dial_busy"),
        ("voxpria-agent", NO_ANSWER, CallStatus.NO_ANSWER, "dial_no_answer"),
    ],
)
async def test_an_overdue_call_takes_the_providers_terminal_answer(
    pipeline: Pipeline, agent: str, phone: str, status: CallStatus, reason: str
) -> None:
    call = await dialed_call(pipeline, agent=agent, phone=phone)
    await provider_says(pipeline, call, status.value)
    await age(pipeline, call, OVERDUE)

    assert await watchdog(pipeline).run_once() == 1

    settled = await pipeline.store.get_call(call.call_id)
    assert settled is not None
    assert settled.status is status
    assert settled.ended_reason == reason
    assert settled.ended_at is not None
    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert ended.data["status"] == status.value
    assert ended.sequence == settled.sequence
    if status is CallStatus.COMPLETED:
        assert settled.transcript is not None
        assert settled.transcript.startswith("agent: Hello")
        assert settled.duration is not None
        assert ended.data["transcript"] == settled.transcript

    # Settled once: another round finds nothing to do.
    assert await watchdog(pipeline).run_once() == 0
    assert len(pipeline.events.of(call.call_id, EventType.CALL_COMPLETED)) == 1


async def test_an_overdue_call_the_provider_still_calls_live_fails_as_timed_out(
    pipeline: Pipeline,
) -> None:
    call = await dialed_call(pipeline, phone=SILENT)
    await provider_says(pipeline, call, "in_progress")
    await age(pipeline, call, OVERDUE)

    assert await watchdog(pipeline).run_once() == 1

    settled = await pipeline.store.get_call(call.call_id)
    assert settled is not None
    assert settled.status is CallStatus.FAILED
    assert settled.ended_reason == "provider_timeout"
    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert ended.data["status"] == "failed"
    assert ended.data["ended_reason"] == "provider_timeout"


async def test_an_overdue_call_the_provider_does_not_know_fails_as_timed_out(
    pipeline: Pipeline,
) -> None:
    call = await dialed_call(pipeline, phone=SILENT)
    # The provider lost the call (its get answers 404).
    await pipeline.store.update_call(call.call_id, CallChanges(provider_call_id="sim_gone"))
    await age(pipeline, call, OVERDUE)

    assert await watchdog(pipeline).run_once() == 1

    settled = await pipeline.store.get_call(call.call_id)
    assert settled is not None
    assert (settled.status, settled.ended_reason) == (CallStatus.FAILED, "provider_timeout")


async def test_a_crowd_of_calls_within_their_deadline_hides_no_overdue_call(
    pipeline: Pipeline,
) -> None:
    crowd = [await dialed_call(pipeline, phone=SILENT) for _ in range(3)]
    for call in crowd:  # quiet for long, but within their deadline
        await age(pipeline, call, OVERDUE - timedelta(seconds=10))
    overdue = await dialed_call(pipeline, phone=SILENT)
    await age(pipeline, overdue, OVERDUE)

    assert await watchdog(pipeline, batch_size=2).run_once() == 1

    settled = await pipeline.store.get_call(overdue.call_id)
    assert settled is not None
    assert settled.status is CallStatus.FAILED
    for call in crowd:
        stored = await pipeline.store.get_call(call.call_id)
        assert stored is not None
        assert stored.status is CallStatus.DIALING


async def test_calls_within_their_deadline_are_left_alone(pipeline: Pipeline) -> None:
    # Dialed within max duration + grace, though quiet for longer than the grace.
    quiet = await dialed_call(pipeline, phone=SILENT)
    await age(pipeline, quiet, OVERDUE - timedelta(seconds=10))
    # Live, and recently dialed.
    recent = await dialed_call(pipeline, phone=SILENT)
    await pipeline.store.update_call(recent.call_id, CallChanges(status=CallStatus.IN_PROGRESS))
    # Not live: never dialed.
    waiting = await queued_call(pipeline.store)
    await pipeline.store.update_call(waiting.call_id, CallChanges(updated_at=utcnow() - OVERDUE))

    assert await watchdog(pipeline).run_once() == 0

    for call, status in (
        (quiet, CallStatus.DIALING),
        (recent, CallStatus.IN_PROGRESS),
        (waiting, CallStatus.QUEUED),
    ):
        stored = await pipeline.store.get_call(call.call_id)
        assert stored is not None
        assert stored.status is status
        assert pipeline.events.of(call.call_id, EventType.CALL_COMPLETED) == []
