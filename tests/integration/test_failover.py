"""An agent with two routes whose first provider is down: calls go through the second,
none is dialed twice, the first provider's breaker opens, and closes once it is back.

Real parts: the dialer on an in-process bus, a SQLite store, the simulator on loopback
answering as every provider; "down" is a loopback port nothing listens on (connection
refused), "back" is the simulator started on that port.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_provider_sim import create_app as create_simulator_app
from switchboard_shared.domain.agents import Agent, Route
from switchboard_shared.domain.breakers import BreakerState, ProviderBreaker
from switchboard_shared.domain.calls import Call, CallStatus, RouteOutcome, utcnow
from switchboard_shared.ports import (
    LookupUnsupported,
    ProviderAmbiguousError,
    ProviderCallRequest,
    ProviderCallState,
)
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.integration.test_dialer import reaches, request, start_dialer
from tests.support.net import eventually
from tests.support.pipeline_parts import (
    API_KEYS,
    CALLBACK_SECRETS,
    Pipeline,
    queued_call,
    running_pipeline,
)

pytestmark = pytest.mark.timeout(60)

DOWN_PORT = free_port()
_numbers = itertools.count(1000)
FAILOVER = Agent(
    key="failover",
    name="Failover",
    routes=[
        Route(provider="vocode", provider_agent_id="vocode-agent-1", from_number="+15005550088"),
        Route(provider="simulator", provider_agent_id="sim-agent-1"),
    ],
)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    vocode_down = {
        "base_url": f"http://127.0.0.1:{DOWN_PORT}",
        "api_key": API_KEYS["vocode"],
        "callback_secret": CALLBACK_SECRETS["vocode"],
        "timeout_seconds": 2,
    }
    async with running_pipeline(
        tmp_path,
        vocode=vocode_down,
        breaker_failure_threshold=2,
        breaker_window_seconds=30,
        breaker_cool_down_seconds=0.5,
    ) as started:
        await started.store.upsert_agent(FAILOVER)
        yield started


async def placed(p: Pipeline) -> Call:
    call = await queued_call(p.store, agent=FAILOVER.key, phone=f"+1415555{next(_numbers):04d}")
    await request(p, call)
    return await reaches(p, call.call_id, CallStatus.DIALING)


def tried(call: Call) -> list[tuple[str, RouteOutcome]]:
    return [(a.provider, a.outcome) for a in call.route_attempts]


async def test_calls_fail_over_and_the_breaker_opens_then_closes(pipeline: Pipeline) -> None:
    await start_dialer(pipeline)

    # Two calls find vocode refusing connections and go out through the simulator.
    first, second = await placed(pipeline), await placed(pipeline)
    for call in (first, second):
        assert call.provider == "simulator"
        assert tried(call) == [
            ("vocode", RouteOutcome.UNREACHABLE),
            ("simulator", RouteOutcome.ACCEPTED),
        ]
    breaker = await pipeline.store.get_breaker("vocode")
    assert breaker is not None
    assert breaker.state is BreakerState.OPEN

    # Open: the next call does not try vocode at all.
    third = await placed(pipeline)
    assert tried(third) == [("simulator", RouteOutcome.ACCEPTED)]

    # Vocode comes back; after the cool-down one probe goes to it and closes the breaker.
    async with serving(create_simulator_app(pipeline.settings), port=DOWN_PORT):

        async def closed_after_a_call() -> Call | None:
            call = await placed(pipeline)
            state = await pipeline.store.get_breaker("vocode")
            return call if state is not None and state.state is BreakerState.CLOSED else None

        probe = await eventually(closed_after_a_call, within=10)
        assert tried(probe) == [("vocode", RouteOutcome.ACCEPTED)]
        assert probe.provider == "vocode"

    # Each call was placed exactly once, at the provider its record names.
    dials = collections.Counter(c["to_number"] for c in await pipeline.sim_calls())
    for call in (first, second, third):
        assert dials[call.phone] == 1


async def test_every_route_down_ends_the_call_all_providers_unavailable(
    pipeline: Pipeline,
) -> None:
    only_down = FAILOVER.model_copy(update={"key": "down", "routes": FAILOVER.routes[:1]})
    await pipeline.store.upsert_agent(only_down)
    await start_dialer(pipeline)
    call = await queued_call(pipeline.store, agent="down")
    await request(pipeline, call)

    failed = await reaches(pipeline, call.call_id, CallStatus.FAILED)
    assert failed.ended_reason == "all_providers_unavailable"
    assert failed.provider_call_id is None
    assert {outcome for _, outcome in tried(failed)} == {RouteOutcome.UNREACHABLE}


class Unanswered:
    """A provider whose creates go out and are never answered (and who cannot say later
    whether it placed them): the ambiguous case."""

    name = "vocode"

    def __init__(self) -> None:
        self.creates = 0

    async def create_call(self, request: ProviderCallRequest) -> ProviderCallState:
        self.creates += 1
        raise ProviderAmbiguousError("vocode create_call no answer: ReadTimeout")

    async def find_call(self, call_id: str) -> ProviderCallState | None:
        raise LookupUnsupported("vocode")

    async def close(self) -> None:
        """Nothing to close."""


async def test_an_unanswered_create_is_never_followed_by_a_dial_elsewhere(
    pipeline: Pipeline,
) -> None:
    unanswered = Unanswered()
    log = await start_dialer(pipeline, {**pipeline.providers, "vocode": unanswered})  # type: ignore[dict-item]
    call = await queued_call(pipeline.store, agent=FAILOVER.key)
    event = await request(pipeline, call)

    async def retried() -> list[str]:
        return log.of(event)

    assert await eventually(retried) == ["RetryLater"]
    held = await pipeline.store.get_call(call.call_id)
    assert held is not None
    # Still claimed for vocode: whoever comes next asks vocode first (it cannot answer,
    # so the call waits for vocode's callbacks), and nobody dials the simulator route.
    assert held.status is CallStatus.QUEUED
    assert held.dial_claim is not None
    assert held.provider == "vocode"
    assert tried(held) == [("vocode", RouteOutcome.AMBIGUOUS)]
    assert unanswered.creates == 1
    assert await pipeline.sim_calls() == []


async def test_an_open_breaker_does_not_stop_callbacks_of_calls_already_placed(
    tmp_path: Path,
) -> None:
    async with running_pipeline(tmp_path, with_ingest=True) as p:
        await start_dialer(p)
        call = await queued_call(p.store, agent="vocode-agent")
        await request(p, call)
        await reaches(p, call.call_id, CallStatus.DIALING)
        # Vocode goes down for new calls: its breaker opens while this call is live.
        opened_at = utcnow()
        saved = await p.store.save_breaker(
            ProviderBreaker(provider="vocode", state=BreakerState.OPEN, opened_at=opened_at)
        )
        assert saved is not None
        done = await reaches(p, call.call_id, CallStatus.COMPLETED)
        assert done.provider == "vocode"
        assert done.transcript
        breaker = await p.store.get_breaker("vocode")
        assert breaker is not None
        assert breaker.state is BreakerState.OPEN  # still open: callbacks do not probe
