"""The dialer turns call.requested into exactly one provider call, over a real bus, a real
SQLite store and the provider simulator on loopback (as all three providers)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from switchboard_dialer.dialing import CLAIM_MARGIN_SECONDS, CallDialer
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.calls.outbox import event_for, event_id
from switchboard_shared.domain.agents import Agent, Route
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus, RouteOutcome, utcnow
from switchboard_shared.domain.tenant_config import SessionDefaults
from switchboard_shared.ports import (
    MessageContext,
    Provider,
    ProviderCallRequest,
    ProviderCallState,
    RetryLater,
)
from switchboard_shared.runtime.settings import ProviderSettings
from switchboard_testing.servers import serving
from tests.support.net import eventually
from tests.support.pipeline_parts import (
    API_KEYS,
    NORMAL_NUMBER,
    Pipeline,
    message_context,
    queued_call,
    running_pipeline,
)

pytestmark = pytest.mark.timeout(60)

PROVIDER_TIMEOUT = 5  # pipeline_settings' provider timeout_seconds
ALWAYS_500, FLAKY_TWICE, REFUSED, SILENT = (
    "+15005550005",
    "+15005550007",
    "+15005550008",
    "+15005550006",
)
PROVIDER_FIELDS = {"provider", "provider_call_id", "dial_claim", "dialing_at"}


@dataclass
class HandlerLog:
    """How each delivery of the dialer's queue ended: "ack" or the exception's name."""

    outcomes: list[tuple[str, str]] = field(default_factory=list)

    def wrap(
        self, handler: Callable[[Event, MessageContext], Awaitable[None]]
    ) -> Callable[[Event, MessageContext], Awaitable[None]]:
        async def observed(event: Event, ctx: MessageContext) -> None:
            try:
                await handler(event, ctx)
            except Exception as exc:
                self.outcomes.append((event.id, type(exc).__name__))
                raise
            self.outcomes.append((event.id, "ack"))

        return observed

    def of(self, event: Event) -> list[str]:
        return [outcome for event_id_, outcome in self.outcomes if event_id_ == event.id]

    async def acked(self, event: Event, times: int = 1) -> list[str]:
        """Waits until `event` was acked `times` times; returns all its outcomes."""

        async def done() -> list[str]:
            outcomes = self.of(event)
            return outcomes if outcomes.count("ack") >= times else []

        return await eventually(done)


async def start_dialer(p: Pipeline, providers: Mapping[str, Provider] | None = None) -> HandlerLog:
    """A CallDialer consuming its queue on the pipeline's bus."""
    dialer = CallDialer(p.store, p.bus, dict(providers or p.providers), p.settings)
    log = HandlerLog()
    subscription = dialer.subscription()
    await p.bus.subscribe(dataclasses.replace(subscription, handler=log.wrap(subscription.handler)))
    return log


async def request(p: Pipeline, call: Call) -> Event:
    """Publish the call's call.requested, as the API (or the outbox relay) does."""
    event = event_for(call)
    assert event.type is EventType.CALL_REQUESTED
    await p.bus.publish(event)
    return event


async def reaches(p: Pipeline, call_id: str, status: CallStatus) -> Call:
    async def current() -> Call | None:
        call = await p.store.get_call(call_id)
        return call if call is not None and call.status is status else None

    return await eventually(current)


class HeldProvider:
    """The real simulator adapter, counting creates; with `held`, each create waits for
    `release` first: a dialer that is slow to reach the provider (a loaded event loop)."""

    def __init__(self, inner: Provider, *, held: bool = True) -> None:
        self.name = inner.name
        self._inner = inner
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        self.creates: list[str] = []
        self.requests: list[ProviderCallRequest] = []

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        self.waiting.set()
        await self.release.wait()
        self.creates.append(request.call_id)
        self.requests.append(request)
        return await self._inner.create_call(request)

    async def get_call(self, provider_call_id: str) -> ProviderCallState:
        return await self._inner.get_call(provider_call_id)

    async def cancel_call(self, provider_call_id: str) -> None:
        await self._inner.cancel_call(provider_call_id)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderCallState:
        return self._inner.parse_callback(headers, body)

    async def close(self) -> None:
        """The inner adapter belongs to the pipeline."""


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with running_pipeline(tmp_path) as p:
        yield p


# --- dialing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "provider"),
    [("sim-agent", "simulator"), ("vocode-agent", "vocode"), ("voxpria-agent", "voxpria")],
)
async def test_a_requested_call_is_dialed_once_and_announced(
    pipeline: Pipeline, agent: str, provider: str
) -> None:
    await start_dialer(pipeline)
    call = await queued_call(pipeline.store, agent=agent)

    await request(pipeline, call)
    dialing_events = await pipeline.events.wait_for(call.call_id, EventType.CALL_DIALING)

    placed = await pipeline.sim_calls()
    assert len(placed) == 1
    assert placed[0]["dialect"] == provider
    assert placed[0]["to_number"] == NORMAL_NUMBER
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    assert (stored.provider, stored.provider_call_id) == (provider, placed[0]["id"])
    assert stored.dialing_at is not None

    [event] = dialing_events
    assert event.sequence == stored.sequence == 2
    assert event.id == event_id(call.call_id, 2)
    assert event.tenant_id == call.tenant_id
    assert event.data["status"] == "dialing"
    assert event.data["call_id"] == call.call_id
    assert not PROVIDER_FIELDS & set(event.data), "provider detail leaked into the event"
    assert not stored.publish_pending


async def test_a_duplicated_call_requested_dials_once(pipeline: Pipeline) -> None:
    # Counted here too: the simulator's own log dedupes by Idempotency-Key.
    counting = HeldProvider(pipeline.providers["simulator"], held=False)
    log = await start_dialer(pipeline, {"simulator": counting})
    call = await queued_call(pipeline.store)

    event = await request(pipeline, call)
    await pipeline.bus.publish(event)  # the same message again: a redelivery

    await pipeline.events.wait_for(call.call_id, EventType.CALL_DIALING)
    await log.acked(event, times=2)
    # And a third copy long after the call was dialed.
    await pipeline.bus.publish(event)
    await log.acked(event, times=3)

    assert counting.creates == [call.call_id]
    assert len(await pipeline.sim_calls()) == 1
    assert len(pipeline.events.of(call.call_id, EventType.CALL_DIALING)) == 1
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    assert stored.sequence == 2


async def test_what_the_agent_leaves_open_is_dialed_with_the_tenants_config(
    pipeline: Pipeline,
) -> None:
    """An agent without prompt, language or max duration: the call goes out with the
    tenant's (`PUT /v1/config`), its watchdog set by that max duration."""
    await pipeline.store.upsert_agent(
        Agent(key="open-agent", name="Open", routes=[Route(provider="vocode")])
    )
    changes = SessionDefaults(
        prompt="Remind {{name}} of the visit.", language="ky", max_duration=45
    )
    await pipeline.store.update_config("tenant-1", changes, {"prompt", "language", "max_duration"})
    recording = HeldProvider(pipeline.providers["vocode"], held=False)
    await start_dialer(pipeline, {"vocode": recording})
    call = await queued_call(pipeline.store, agent="open-agent", variables={"name": "Aida"})

    await request(pipeline, call)
    dialed = await reaches(pipeline, call.call_id, CallStatus.DIALING)

    [sent] = recording.requests
    assert sent.agent is not None
    assert (sent.agent.prompt, sent.agent.language, sent.agent.max_duration_seconds) == (
        "Remind Aida of the visit.",
        "ky",
        45,
    )
    assert dialed.max_duration_seconds == 45
    assert dialed.watchdog_deadline is not None
    assert dialed.dialed_at is not None
    grace = pipeline.settings.watchdog_grace_seconds
    expected = dialed.dialed_at + timedelta(seconds=45 + grace)
    assert abs((dialed.watchdog_deadline - expected).total_seconds()) < 5

    # The agent's own values win over the tenant's.
    await pipeline.store.upsert_agent(
        Agent(
            key="open-agent",
            name="Open",
            prompt="Own prompt",
            language="ru",
            max_duration_seconds=120,
            routes=[Route(provider="vocode")],
        )
    )
    second = await queued_call(pipeline.store, agent="open-agent")
    await request(pipeline, second)
    assert (await reaches(pipeline, second.call_id, CallStatus.DIALING)).max_duration_seconds == 120
    assert recording.requests[1].agent is not None
    assert (recording.requests[1].agent.prompt, recording.requests[1].agent.language) == (
        "Own prompt",
        "ru",
    )


async def test_two_dialers_handling_one_call_at_once_dial_it_once(pipeline: Pipeline) -> None:
    counting = HeldProvider(pipeline.providers["simulator"], held=False)
    dialers = [
        CallDialer(pipeline.store, pipeline.bus, {"simulator": counting}, pipeline.settings)
        for _ in range(2)
    ]
    call = await queued_call(pipeline.store)
    event = event_for(call)

    outcomes = await asyncio.gather(
        *(d.handle(event, message_context()) for d in dialers), return_exceptions=True
    )

    # One dials; the other finds the call taken (told to look again later) or dialed.
    assert counting.creates == [call.call_id]
    assert all(o is None or isinstance(o, RetryLater) for o in outcomes), outcomes
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    # Looking again: nothing left to do.
    await dialers[0].handle(event, message_context())
    assert counting.creates == [call.call_id]


@pytest.mark.parametrize("agent", ["no-such-agent", "retired"])
async def test_an_unknown_or_disabled_agent_fails_the_call(pipeline: Pipeline, agent: str) -> None:
    log = await start_dialer(pipeline)
    call = await queued_call(pipeline.store, agent=agent)

    event = await request(pipeline, call)

    failed = await reaches(pipeline, call.call_id, CallStatus.FAILED)
    assert failed.ended_reason == "agent_unavailable"
    assert failed.ended_at is not None
    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert ended.data["status"] == "failed"
    assert ended.data["ended_reason"] == "agent_unavailable"
    assert await log.acked(event) == ["ack"]
    assert await pipeline.sim_calls() == []


async def test_an_agent_on_a_provider_not_configured_fails_the_call(tmp_path: Path) -> None:
    async with running_pipeline(tmp_path, voxpria=ProviderSettings()) as p:
        assert "voxpria" not in p.providers
        await start_dialer(p)
        call = await queued_call(p.store, agent="voxpria-agent")

        await request(p, call)

        failed = await reaches(p, call.call_id, CallStatus.FAILED)
        assert failed.ended_reason == "provider_not_configured"
        [ended] = await p.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
        assert ended.data["ended_reason"] == "provider_not_configured"
        assert await p.sim_calls() == []


async def test_a_provider_that_keeps_failing_is_retried_then_the_call_fails(
    pipeline: Pipeline,
) -> None:
    log = await start_dialer(pipeline)
    call = await queued_call(pipeline.store, phone=ALWAYS_500)

    event = await request(pipeline, call)

    failed = await reaches(pipeline, call.call_id, CallStatus.FAILED)
    assert failed.ended_reason == "all_providers_unavailable"
    # Every delivery the schedule allows (1 + len(dial_retry_delays)), then acked.
    retries = len(pipeline.settings.dial_retry_delays)
    # Each try of the agent's one route is on the call (internally), none accepted.
    assert [(a.route, a.provider, a.outcome) for a in failed.route_attempts] == [
        (0, "simulator", RouteOutcome.UNREACHABLE)
    ] * (retries + 1)
    assert failed.dial_claim is None
    assert await log.acked(event) == ["RetryLater"] * retries + ["ack"]
    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert ended.data["status"] == "failed"
    assert pipeline.events.of(call.call_id, EventType.CALL_DIALING) == []
    assert await pipeline.bus.peek_dead_letters("dialer.call-requested") == []
    assert await pipeline.sim_calls() == []


async def test_a_provider_failing_twice_is_dialed_once_after_retries(pipeline: Pipeline) -> None:
    log = await start_dialer(pipeline)
    call = await queued_call(pipeline.store, phone=FLAKY_TWICE)

    event = await request(pipeline, call)

    await pipeline.events.wait_for(call.call_id, EventType.CALL_DIALING)
    assert await log.acked(event) == ["RetryLater", "RetryLater", "ack"]
    [placed] = await pipeline.sim_calls()
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    assert stored.provider_call_id == placed["id"]


async def test_a_call_the_provider_refuses_fails_without_retries(pipeline: Pipeline) -> None:
    log = await start_dialer(pipeline)
    call = await queued_call(pipeline.store, phone=REFUSED)

    event = await request(pipeline, call)

    failed = await reaches(pipeline, call.call_id, CallStatus.FAILED)
    assert failed.ended_reason == "provider_rejected"
    assert await log.acked(event) == ["ack"]
    assert await pipeline.sim_calls() == []


# --- concurrency limit --------------------------------------------------------------------


@dataclass
class SlowProvider:
    """A provider speaking the simulator's native create route, answering after `delay`;
    it counts the creates it holds at once and notes when each one arrived."""

    delay: float
    in_flight: int = 0
    most_in_flight: int = 0
    arrived: dict[str, datetime] = field(default_factory=dict)  # by our call id

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/calls")
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            self.arrived[body["reference"]] = utcnow()
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            provider_call_id = f"slow_{len(self.arrived)}"
            return JSONResponse({"id": provider_call_id, "status": "queued"}, status_code=201)

        return app


async def test_creates_in_flight_never_exceed_the_providers_limit(tmp_path: Path) -> None:
    slow = SlowProvider(delay=0.3)
    async with serving(slow.app()) as slow_url:
        limited = {
            "base_url": slow_url,
            "api_key": API_KEYS["simulator"],
            "max_in_flight": 2,
            "timeout_seconds": PROVIDER_TIMEOUT,
        }
        async with running_pipeline(tmp_path, simulator=limited) as p:
            await start_dialer(p)
            calls = [await queued_call(p.store) for _ in range(6)]

            for call in calls:
                await request(p, call)
            dialed = [await reaches(p, call.call_id, CallStatus.DIALING) for call in calls]

    assert set(slow.arrived) == {c.call_id for c in calls}
    assert slow.most_in_flight == 2
    # A call waiting for a free slot is not claimed yet: its claim (`dialing_at`) starts
    # with its provider request, so the claim's expiry (provider timeout + margin)
    # bounds the request and not the time spent queueing behind the limit.
    for call in dialed:
        assert call.dialing_at is not None
        gap = (slow.arrived[call.call_id] - call.dialing_at).total_seconds()
        assert gap < slow.delay / 2, f"claimed {gap:.2f}s before its create was sent"


# --- claims -------------------------------------------------------------------------------


async def test_a_call_claimed_by_another_dialer_is_left_to_it(pipeline: Pipeline) -> None:
    dialer = CallDialer(pipeline.store, pipeline.bus, pipeline.providers, pipeline.settings)
    call = await queued_call(pipeline.store)
    await pipeline.store.update_call(
        call.call_id,
        CallChanges(dial_claim="other-dialer", dialing_at=utcnow() - timedelta(seconds=2)),
    )

    with pytest.raises(RetryLater) as retry:
        await dialer.dial(call.call_id, message_context())

    # Look again once that claim could have expired, not before.
    stale_after = PROVIDER_TIMEOUT + CLAIM_MARGIN_SECONDS
    assert retry.value.delay is not None
    assert stale_after - 2 <= retry.value.delay <= stale_after
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert (stored.status, stored.dial_claim) == (CallStatus.QUEUED, "other-dialer")
    assert await pipeline.sim_calls() == []


async def test_a_stale_claim_is_taken_over(pipeline: Pipeline) -> None:
    dialer = CallDialer(pipeline.store, pipeline.bus, pipeline.providers, pipeline.settings)
    call = await queued_call(pipeline.store)
    long_ago = utcnow() - timedelta(seconds=PROVIDER_TIMEOUT + CLAIM_MARGIN_SECONDS + 1)
    await pipeline.store.update_call(
        call.call_id, CallChanges(dial_claim="dead-dialer", dialing_at=long_ago)
    )

    await dialer.dial(call.call_id, message_context())

    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    assert stored.dial_claim not in (None, "dead-dialer")
    [placed] = await pipeline.sim_calls()
    assert stored.provider_call_id == placed["id"]
    await pipeline.events.wait_for(call.call_id, EventType.CALL_DIALING)


async def test_a_dialer_whose_claim_was_taken_over_leaves_the_placed_call_alone(
    pipeline: Pipeline,
) -> None:
    """Dialer A claims the call and is slow to reach the provider; its claim goes stale
    and dialer B places the call. The provider honours the Idempotency-Key, so A's late
    create returns the very call B placed: A must not hang it up."""
    held = HeldProvider(pipeline.providers["simulator"])
    slow_dialer = CallDialer(pipeline.store, pipeline.bus, {"simulator": held}, pipeline.settings)
    other_dialer = CallDialer(pipeline.store, pipeline.bus, pipeline.providers, pipeline.settings)
    call = await queued_call(pipeline.store, phone=SILENT)  # stays in progress at the provider

    slow = asyncio.create_task(slow_dialer.dial(call.call_id, message_context()))
    await asyncio.wait_for(held.waiting.wait(), 5)
    long_ago = utcnow() - timedelta(seconds=PROVIDER_TIMEOUT + CLAIM_MARGIN_SECONDS + 1)
    await pipeline.store.update_call(call.call_id, CallChanges(dialing_at=long_ago))
    await other_dialer.dial(call.call_id, message_context())
    held.release.set()
    await asyncio.wait_for(slow, 10)

    [placed] = await pipeline.sim_calls()
    assert placed["status"] != "canceled"
    stored = await pipeline.store.get_call(call.call_id)
    assert stored is not None
    assert stored.status is CallStatus.DIALING
    assert stored.provider_call_id == placed["id"]


# --- canceling ----------------------------------------------------------------------------


async def test_cancel_requested_hangs_up_a_dialing_call(pipeline: Pipeline) -> None:
    await start_dialer(pipeline)
    call = await queued_call(pipeline.store, phone=SILENT)
    await request(pipeline, call)
    await pipeline.events.wait_for(call.call_id, EventType.CALL_DIALING)

    # As the API's cancel route does for a live call.
    flagged = await pipeline.store.update_call(call.call_id, CallChanges(cancel_requested=True))
    assert flagged is not None
    await pipeline.bus.publish(
        Event(
            type=EventType.CALL_CANCEL_REQUESTED,
            tenant_id=flagged.tenant_id,
            call_id=flagged.call_id,
            sequence=flagged.sequence,
        )
    )

    canceled = await reaches(pipeline, call.call_id, CallStatus.CANCELED)
    assert canceled.ended_reason == "canceled_by_customer"
    assert canceled.ended_at is not None
    [placed] = await pipeline.sim_calls()
    assert placed["status"] == "canceled"
    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert ended.data["status"] == "canceled"
    assert ended.data["ended_reason"] == "canceled_by_customer"
    sequences = [e.sequence for e in pipeline.events.of(call.call_id)]
    assert sequences == sorted(sequences)
